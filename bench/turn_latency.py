"""Turn latency and throughput of the runtime (issue #2's benchmark).

Topology, all on this machine, each part its own process speaking real HTTP:

    bench client ──HTTP──► runtime (agentfleet serve) ──OpenAI SDK──► fake provider
                                         └──MCP streamable HTTP──► demo MCP server

A turn is ``POST /api/v1/sessions/{id}/messages`` with "calculate 17*23": the offline fake
model (zero latency) calls the ``calculate`` tool, then answers from its result, so a turn
is two model calls and one MCP tool call. Prints p50/p99 latency for one session, and
p50/p99 plus turns per second for 32 concurrent sessions, then where the time goes (from
the runtime's own histograms) and the CPU each process used.

``--backend redis`` keeps the runtime's state (sessions, events, turn inboxes and leases,
checkpoints, runs) in a ``redis-server`` the script starts, as a cluster deployment does;
its CPU is reported as well.

Run: ``uv run python bench/turn_latency.py [--turns 300] [--sessions 32] [--backend redis]
[--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import yaml

from agentfleet_runtime.testing.redis import running_redis

BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SESSION_TURNS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextmanager
def process(name: str, args: list[str], env: dict[str, str] | None = None) -> Iterator[int]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15, None):
            err = proc.stderr.read().decode() if proc.stderr else ""
            print(f"{name} exited with {proc.returncode}: {err[-2000:]}", file=sys.stderr)


async def wait_http(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx2.AsyncClient() as client:
        while True:
            try:
                response = await client.get(url)
                if response.status_code < 500:
                    return
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def wait_tcp(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)


def redis_commands(url: str | None) -> int:
    """Commands the redis-server has run so far (``INFO commandstats``), 0 without one."""
    if url is None:
        return 0
    import redis

    with redis.Redis.from_url(url) as client:
        stats: dict[str, dict[str, int]] = client.info("commandstats")  # type: ignore[assignment]
    return sum(entry["calls"] for entry in stats.values())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_session(
    client: httpx2.AsyncClient, turns: int, latencies: list[float], errors: list[str]
) -> None:
    """One user's conversation; a new session every SESSION_TURNS turns keeps the history
    (which every model call sends again) at a realistic length."""
    session = ""
    for i in range(turns):
        if i % SESSION_TURNS == 0:
            response = await client.post("/api/v1/sessions", json={"agent": "bench"})
            session = response.json()["id"]
        started = time.perf_counter()
        response = await client.post(
            f"/api/v1/sessions/{session}/messages", json={"content": f"calculate 17*{i + 23}"}
        )
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or len(response.json()["tool_calls"]) != 1:
            errors.append(response.text[:300])


def histogram_sums(metrics: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for name in ("turn", "model_call", "tool_call"):
        pattern = rf"^agentfleet_{name}_duration_seconds_sum\{{[^}}]*\}} (\S+)$"
        sums[name] = sum(float(v) for v in re.findall(pattern, metrics, re.M))
        pattern = rf"^agentfleet_{name}_duration_seconds_count\{{[^}}]*\}} (\S+)$"
        sums[name + "_count"] = sum(float(v) for v in re.findall(pattern, metrics, re.M))
    return sums


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=300, help="turns in the 1-session run")
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--turns-per-session", type=int, default=40)
    parser.add_argument("--stream-tokens", choices=["true", "false"], default="true")
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = None
        if args.backend == "redis":
            redis = stack.enter_context(running_redis())
            redis_url = redis.url
            assert redis.process is not None
            extra_pids = {"redis-server": redis.process.pid}
        else:
            extra_pids = {}
        await run(args, redis_url, extra_pids)


async def run(args: argparse.Namespace, redis_url: str | None, extra_pids: dict[str, int]) -> None:

    fake_port, mcp_port, runtime_port = free_port(), free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="agentfleet-bench-"))
    config = {
        "agents": [
            {
                "name": "bench",
                "spec": {
                    "systemPrompt": "You are a calculator.",
                    "model": {"provider": "fake", "name": "offline"},
                    "tools": [{"mcpServerRef": {"name": "demo"}}],
                },
                "mcpServers": [
                    {
                        "name": "demo",
                        "transport": "streamable-http",
                        "url": f"http://127.0.0.1:{mcp_port}/mcp",
                    }
                ],
            }
        ]
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cli = str(BIN / "agentfleet")
    runtime_env = {
        "AGENTFLEET_FAKE_PROVIDER_URL": f"http://127.0.0.1:{fake_port}",
        "AGENTFLEET_LOG_LEVEL": "WARNING",
        "AGENTFLEET_STREAM_TOKENS": args.stream_tokens,
        # The API's per-caller limits (300 turns/min by default) would cap the load: this
        # measures the turn path, not the limiter.
        "AGENTFLEET_RATE_LIMITS__ENABLED": "false",
    }
    if redis_url is not None:
        runtime_env["AGENTFLEET_STATE__BACKEND"] = "redis"
        runtime_env["AGENTFLEET_STATE__REDIS_URL"] = redis_url
    with (
        process("fake provider", [cli, "fake-provider", "--port", str(fake_port)]) as fake_pid,
        process(
            "demo MCP server",
            [cli, "mcp", "demo", "--transport", "streamable-http", "--port", str(mcp_port)],
        ) as mcp_pid,
    ):
        await wait_http(f"http://127.0.0.1:{fake_port}/v1/models")
        await wait_tcp(mcp_port)  # a GET on an MCP endpoint opens a long-lived stream
        with process(
            "runtime",
            [
                cli,
                "serve",
                "--config",
                str(workdir / "config.yaml"),
                "--port",
                str(runtime_port),
                "--host",
                "127.0.0.1",
            ],
            env=runtime_env,
        ) as runtime_pid:
            base = f"http://127.0.0.1:{runtime_port}"
            await wait_http(f"{base}/healthz/live")
            limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx2.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                for _ in range(100):
                    if (await client.get("/healthz/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                errors: list[str] = []
                await run_session(client, 50, [], errors)  # warm-up

                single: list[float] = []
                await run_session(client, args.turns, single, errors)

                pids = {
                    "runtime": runtime_pid,
                    "fake provider": fake_pid,
                    "demo MCP": mcp_pid,
                    "bench client": os.getpid(),
                    **extra_pids,
                }
                cpu_before = {k: cpu_seconds(p) for k, p in pids.items()}
                commands_before = redis_commands(redis_url)
                before = histogram_sums((await client.get("/metrics")).text)
                concurrent: list[float] = []
                started = time.perf_counter()
                await asyncio.gather(
                    *(
                        run_session(client, args.turns_per_session, concurrent, errors)
                        for _ in range(args.sessions)
                    )
                )
                wall = time.perf_counter() - started
                after = histogram_sums((await client.get("/metrics")).text)
                cpu = {k: cpu_seconds(p) - cpu_before[k] for k, p in pids.items()}
                commands = redis_commands(redis_url) - commands_before

    turns = len(concurrent)
    delta = {k: after[k] - before[k] for k in after}
    per_turn_ms = {
        "turn (server side)": delta["turn"] / turns * 1000,
        "model calls (2 per turn)": delta["model_call"] / turns * 1000,
        "MCP tool call": delta["tool_call"] / turns * 1000,
    }
    per_turn_ms["graph + state overhead"] = (
        per_turn_ms["turn (server side)"]
        - per_turn_ms["model calls (2 per turn)"]
        - per_turn_ms["MCP tool call"]
    )
    figures = {
        "single_session": {
            "turns": len(single),
            "p50_ms": round(pct(single, 0.5) * 1000, 2),
            "p99_ms": round(pct(single, 0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(single) * 1000, 2),
        },
        "concurrent": {
            "sessions": args.sessions,
            "turns": turns,
            "turns_per_second": round(turns / wall, 1),
            "p50_ms": round(pct(concurrent, 0.5) * 1000, 2),
            "p99_ms": round(pct(concurrent, 0.99) * 1000, 2),
        },
        "server_time_per_turn_ms_at_concurrency": {k: round(v, 2) for k, v in per_turn_ms.items()},
        "cpu_ms_per_turn_by_process": {k: round(v / turns * 1000, 2) for k, v in cpu.items()},
        # What one runtime process could do if it had a core to itself: a figure that
        # does not depend on what else this machine is running.
        "runtime_cpu_ceiling_turns_per_second": round(turns / cpu["runtime"], 1),
        "load_average_1m": os.getloadavg()[0],
        "redis_commands_per_turn": round(commands / turns, 1) if redis_url else None,
        "errors": len(errors),
        "stream_tokens": args.stream_tokens,
        "backend": args.backend,
        "cpus": os.cpu_count(),
    }
    if errors:
        print("first error:", errors[0], file=sys.stderr)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    s, c = figures["single_session"], figures["concurrent"]
    print(f"1 session : {s['turns']} turns  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms")
    print(
        f"{c['sessions']} sessions: {c['turns']} turns  {c['turns_per_second']} turns/s  "
        f"p50 {c['p50_ms']} ms  p99 {c['p99_ms']} ms"
    )
    print("server-side time per turn under load (ms):")
    for k, v in figures["server_time_per_turn_ms_at_concurrency"].items():
        print(f"  {k:28} {v:8.2f}")
    print("CPU per turn by process (ms):")
    for k, v in figures["cpu_ms_per_turn_by_process"].items():
        print(f"  {k:28} {v:8.2f}")
    if figures["redis_commands_per_turn"] is not None:
        print(f"redis commands per turn: {figures['redis_commands_per_turn']}")
    print(
        f"runtime CPU ceiling: {figures['runtime_cpu_ceiling_turns_per_second']} turns/s "
        f"(one core for the runtime); load average {figures['load_average_1m']:.2f}"
    )
    print(
        f"errors: {figures['errors']}  (backend={args.backend}, "
        f"stream_tokens={args.stream_tokens}, cpus={os.cpu_count()})"
    )


if __name__ == "__main__":
    asyncio.run(main())
