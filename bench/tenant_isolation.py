"""Tenant isolation under a flood (issue #9): does one tenant exhausting its quotas slow
another tenant down?

Topology, on this machine: the runtime (``agentfleet serve``, its own process, memory
backend) with static tokens of two tenants; the fake model provider (in this process,
answering every call after ``--model-latency`` seconds, like a fast LLM: a turn is one
model call); tenant B's client in this process; tenant A's flood in a child process
(so that its client CPU does not slow B's client down).

1. **Baseline**: B alone sends ``--b-rate`` turns per second (open loop, over 8 sessions)
   for ``--seconds``: p50/p95 latency.
2. **Flood**: the same B load while A sends ``--flood-rate`` turns per second (open loop,
   at most ``--flood-concurrency`` in flight, over 32 sessions), far over its quotas
   (``max_concurrent_turns`` 4, ``requests_per_minute`` 600: the default of every tenant;
   B has ``max_concurrent_turns`` 32 of its own); the replica executes 16 turns at once
   (fair scheduler). Figures: B's p50/p95 and their ratio to the baseline, B's failures,
   A's accepted turns and its 429s by problem type. Target: B's p50 within 20 % of its
   baseline.

Run: ``uv run python bench/tenant_isolation.py [--seconds 20] [--json]`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections import Counter
from typing import Any

import httpx2

from agentfleet_runtime.providers.fake import FakeReply, FakeScript
from agentfleet_runtime.testing.fake_provider import running_fake_provider
from turn_latency import cpu_seconds, pct
from ws_common import runtime

TOKENS = {"a": "tenant-a-token", "b": "tenant-b-token", "ops": "operator-token"}
#: Every tenant's (A's); B gets a larger max_concurrent_turns of its own (its load never
#: needs more than a few at once, but a slow turn must not make it refuse itself).
QUOTAS = {"MAX_CONCURRENT_TURNS": "4", "REQUESTS_PER_MINUTE": "600"}
B_QUOTAS = {"max_concurrent_turns": 32}
EXECUTING_AT_ONCE = "16"  # AGENTFLEET_SCHEDULING__MAX_CONCURRENT_TURNS


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[tenant]}"}


async def sessions(client: httpx2.AsyncClient, tenant: str, n: int) -> list[str]:
    made = []
    for _ in range(n):
        response = await client.post(
            "/api/v1/sessions", json={"agent": "bench"}, headers=auth(tenant)
        )
        response.raise_for_status()
        made.append(response.json()["id"])
    return made


async def b_load(url: str, rate: float, seconds: float) -> tuple[list[float], dict[str, int]]:
    """B's open-loop load: latencies of its turns, and its failures by problem type."""
    latencies: list[float] = []
    failed: Counter[str] = Counter()
    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx2.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        pool = await sessions(client, "b", 8)

        async def turn(i: int) -> None:
            started = time.perf_counter()
            response = await client.post(
                f"/api/v1/sessions/{pool[i % len(pool)]}/messages",
                json={"content": f"hello {i}"},
                headers=auth("b"),
            )
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failed[f"{response.status_code} {response.json().get('type', '')}"] += 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(turn(i)))
        await asyncio.gather(*tasks)
    return latencies, dict(failed)


async def _flood(url: str, rate: float, concurrency: int, seconds: float) -> dict[str, int]:
    outcomes: Counter[str] = Counter()
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        pool = await sessions(client, "a", 32)
        in_flight = asyncio.Semaphore(concurrency)

        async def turn(i: int) -> None:
            try:
                response = await client.post(
                    f"/api/v1/sessions/{pool[i % len(pool)]}/messages",
                    json={"content": f"flood {i}"},
                    headers=auth("a"),
                )
            finally:
                in_flight.release()
            if response.status_code == 200:
                outcomes["accepted"] += 1
            else:
                body = response.json()
                kind = body["type"].rsplit("/", 1)[-1]
                detail = body.get("quota") or body.get("limit_scope")
                retry = (
                    "with Retry-After" if "Retry-After" in response.headers else "no Retry-After"
                )
                outcomes[f"{response.status_code} {kind} ({detail}, {retry})"] += 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            await in_flight.acquire()  # at most `concurrency` in flight: the rest is late
            tasks.append(asyncio.create_task(turn(i)))
        await asyncio.gather(*tasks)
        outcomes["sent"] = len(tasks)
    return dict(outcomes)


def flood(url: str, rate: float, concurrency: int, seconds: float, out: Any) -> None:
    """Tenant A's flood, in a child process."""
    out.send(asyncio.run(_flood(url, rate, concurrency, seconds)))


def figures(latencies: list[float]) -> dict[str, float]:
    return {
        "turns": len(latencies),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
        "p95_ms": round(pct(latencies, 0.95) * 1000, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--b-rate", type=float, default=4.0, help="B's turns per second")
    parser.add_argument("--flood-rate", type=float, default=200.0, help="A's turns per second")
    parser.add_argument("--flood-concurrency", type=int, default=64)
    parser.add_argument("--model-latency", type=float, default=0.2, help="seconds per model call")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    args = parser.parse_args()

    script = FakeScript(fallback=FakeReply(text="done", latency_seconds=args.model_latency))
    env = {
        "AGENTFLEET_AUTH__TOKENS": json.dumps(
            [
                {"token": token, "subject": t, "tenant": "default" if t == "ops" else f"tenant-{t}"}
                for t, token in TOKENS.items()
            ]
        ),
        **{f"AGENTFLEET_TENANCY__DEFAULT_QUOTAS__{k}": v for k, v in QUOTAS.items()},
        "AGENTFLEET_SCHEDULING__MAX_CONCURRENT_TURNS": EXECUTING_AT_ONCE,
        # per caller: out of the way (the tenant's requests_per_minute quota is the limit)
        "AGENTFLEET_RATE_LIMITS__INVOKE__PER_MINUTE": "100000",
        "AGENTFLEET_RATE_LIMITS__INVOKE__BURST": "1000",
    }
    async with running_fake_provider(script) as fake:
        with runtime("isolation", fake_url=fake.url, **env) as (url, pid):
            async with httpx2.AsyncClient(base_url=url) as ops:  # the operator tenant's admin
                own = {"id": "tenant-b", "quotas": B_QUOTAS}
                (
                    await ops.post("/api/v1/tenants", json=own, headers=auth("ops"))
                ).raise_for_status()
            await b_load(url, args.b_rate, 3)  # warm-up
            cpu = cpu_seconds(pid)
            baseline, baseline_failed = await b_load(url, args.b_rate, args.seconds)
            cpu_baseline = cpu_seconds(pid) - cpu

            receive, send = multiprocessing.Pipe(duplex=False)
            child = multiprocessing.get_context("spawn").Process(
                target=flood,
                args=(url, args.flood_rate, args.flood_concurrency, args.seconds + 2, send),
            )
            child.start()
            await asyncio.sleep(2)  # the flood is on (sessions made, quota used up)
            cpu = cpu_seconds(pid)
            flooded, flooded_failed = await b_load(url, args.b_rate, args.seconds)
            cpu_flood = cpu_seconds(pid) - cpu
            a = await asyncio.to_thread(receive.recv)
            child.join(30)

    base, under = figures(baseline), figures(flooded)
    result = {
        "b_baseline": base | {"failed": baseline_failed},
        "b_during_flood": under | {"failed": flooded_failed},
        "b_p50_ratio": round(under["p50_ms"] / base["p50_ms"], 3),
        "b_p95_ratio": round(under["p95_ms"] / base["p95_ms"], 3),
        "a_flood": a,
        "runtime_cpu_share": {
            "baseline": round(cpu_baseline / args.seconds, 2),
            "flood": round(cpu_flood / args.seconds, 2),
        },
        "settings": {
            "b_turns_per_second": args.b_rate,
            "a_turns_per_second_offered": args.flood_rate,
            "a_concurrency": args.flood_concurrency,
            "model_latency_s": args.model_latency,
            "quotas_per_tenant": QUOTAS,
            "b_own_quotas": B_QUOTAS,
            "max_concurrent_turns_per_replica": int(EXECUTING_AT_ONCE),
        },
        "target_met": under["p50_ms"] <= 1.2 * base["p50_ms"],
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"B alone      : {base['turns']} turns  p50 {base['p50_ms']} ms  p95 {base['p95_ms']} ms")
    print(
        f"B under flood: {under['turns']} turns  p50 {under['p50_ms']} ms  p95 {under['p95_ms']} ms"
        f"  (x{result['b_p50_ratio']} / x{result['b_p95_ratio']}; failed: {flooded_failed})"
    )
    print(f"A's flood ({args.flood_rate}/s offered):")
    for outcome, count in sorted(a.items()):
        print(f"  {outcome:60} {count}")
    print(
        f"runtime CPU (cores): {result['runtime_cpu_share']}; target (B p50 within 20%) "
        f"{'met' if result['target_met'] else 'NOT met'}; "
        f"load average {result['load_average_1m']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
