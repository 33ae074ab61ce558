"""Chaos run: a steady load of turns while faults are injected at random, then an audit
of what became of every accepted turn. Lost must be 0.

Topology (one process, real HTTP and real servers everywhere)::

    chaos clients ──HTTP──► runtime (state in redis-server) ──OpenAI SDK──► fake provider (primary)
                                   │                      └──────────────► fake provider (fallback)
                                   └──MCP streamable HTTP──► demo MCP server

* ``--fault-rate`` (20%) of the primary model's calls fail, in mixed ways: 429 with
  Retry-After, 503, 529, 500, a reply slower than the model's timeout, a connection cut
  mid-body, and (rarely) 401 — a permanent failure that must be dead-lettered.
* redis-server (append-only file, fsync always: a restart keeps its data) is killed and
  restarted in the middle of the run (``--redis-restarts``).
* Clients resend a POST that got no answer (transport error, 5xx before acceptance) with
  the same ``Idempotency-Key``, as a real client would.

The audit reads the runtime's own records afterwards: every turn with events was
*accepted*; it was *answered* (``turn.completed``), *degraded* (completed with a degraded
answer), *dead-lettered* (``turn.failed`` and a dead letter with its input), or *lost*
(anything else). ``refused`` counts messages the runtime never accepted (the client was
told so and may send again).

Run: ``uv run python bench/chaos.py [--turns 400] [--sessions 8] [--fault-rate 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, MCPTransport, ResiliencePolicySpec
from agentfleet_runtime.app import create_app
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.observability.logging import configure_logging
from agentfleet_runtime.providers.fake import FakeReply, FakeScript
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.fake_provider import running_fake_provider
from agentfleet_runtime.testing.redis import RedisServer
from agentfleet_runtime.testing.servers import free_port, running_server
from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi

#: The faults, with their weights (401 is rare: each one is a dead letter).
FAULTS: dict[str, tuple[FakeReply, float]] = {
    "429": (FakeReply(status=429, retry_after=0.05), 3),
    "503": (FakeReply(status=503), 3),
    "529": (FakeReply(status=529), 2),
    "500": (FakeReply(status=500), 2),
    "slow": (FakeReply(text="too late", latency_seconds=1.2), 1),
    "cut": (FakeReply(text="cut in the middle of the body", drop_after_chunks=0), 2),
    "401": (FakeReply(status=401, error_message="invalid api key"), 0.3),
}


class ChaosScript(FakeScript):
    """The offline model, except for ``rate`` of the calls, which get a random fault."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        super().__init__(max_recorded=100)
        self.rate = rate
        self.rng = rng
        self.injected: Counter[str] = Counter()
        self.calls = 0

    def next_reply(self) -> FakeReply | None:
        self.calls += 1
        if self.rng.random() >= self.rate:
            return None
        names = list(FAULTS)
        kind = self.rng.choices(names, weights=[FAULTS[n][1] for n in names])[0]
        self.injected[kind] += 1
        return FAULTS[kind][0]


@dataclass
class ChaosReport:
    sent: int = 0
    accepted: int = 0
    answered: int = 0
    degraded: int = 0
    dead_lettered: int = 0
    lost: int = 0
    refused: int = 0
    redis_restarts: int = 0
    model_calls: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    lost_turns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return [
            f"messages sent      {self.sent}",
            f"turns accepted     {self.accepted}",
            f"  answered         {self.answered}",
            f"  degraded         {self.degraded}",
            f"  dead-lettered    {self.dead_lettered}",
            f"  lost             {self.lost}",
            f"refused (resend)   {self.refused}",
            f"model calls        {self.model_calls} (faults injected: {faults})",
            f"redis restarts     {self.redis_restarts}",
            f"duration           {self.seconds:.1f}s",
        ]


def _agent(primary: str, fallback: str, demo: ResolvedMCPServer) -> AgentConfig:
    spec = AgentSpec.model_validate(
        {
            "systemPrompt": "You are a calculator.",
            "model": {
                "provider": "fake",
                "name": "fake-model",
                "baseUrl": primary,
                "timeoutSeconds": 1.0,
            },
            "fallbackModels": [{"provider": "fake", "name": "offline", "baseUrl": fallback}],
            "tools": [{"mcpServerRef": {"name": "demo"}}],
            "maxSteps": 6,
        }
    )
    resilience = ResiliencePolicySpec.model_validate(
        {
            "llm": {
                "timeoutSeconds": 5,
                "retry": {"maxAttempts": 3, "baseDelaySeconds": 0.05, "maxDelaySeconds": 0.5},
                "circuitBreaker": {"failureThreshold": 5, "recoveryTimeoutSeconds": 2},
            },
            "http": {"retry": {"maxAttempts": 3, "baseDelaySeconds": 0.05}},
        }
    )
    return AgentConfig(
        name="calc", namespace="chaos", spec=spec, mcp_servers=[demo], resilience=resilience
    )


@contextlib.asynccontextmanager
async def _redis(workdir: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(
        port=free_port(),
        workdir=workdir,
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    )
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def _demo() -> contextlib.AbstractAsyncContextManager[Any]:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    demo = demo_server_asgi()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with demo.lifespan():
            yield

    host = Starlette(routes=[Mount("/mcp", app=demo.app)], lifespan=lifespan)
    return running_server(host)


async def _post(
    client: httpx2.AsyncClient, session: str, content: str, report: ChaosReport
) -> None:
    """Send one message; resend (same idempotency key) while the runtime did not take it
    or did not answer, as a patient client would: honouring ``Retry-After``, for up to
    ``RESEND_PATIENCE`` seconds (a Redis restart plus the breaker's recovery can take
    several seconds on a loaded machine; giving up earlier would count as refused a
    message the runtime accepted and is answering)."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + RESEND_PATIENCE
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        wait = min(0.2 * attempt, 2.0)
        try:
            response = await client.post(
                f"/api/v1/sessions/{session}/messages",
                json={"content": content},
                headers={"idempotency-key": key},
            )
        except httpx2.HTTPError:
            await asyncio.sleep(wait)
            continue
        if response.status_code == 200:
            return
        problem = response.json() if response.content else {}
        if problem.get("type", "").rsplit("/", 1)[-1] in _TURN_FAILURES:
            return  # the turn ran and failed: the audit finds its dead letter
        with contextlib.suppress(ValueError):
            wait = max(wait, min(float(response.headers.get("retry-after", 0)), 5.0))
        await asyncio.sleep(wait)  # not taken or not answered (e.g. Redis down): resend
    report.refused += 1


#: How long a client keeps resending one message before it gives up (counted refused).
RESEND_PATIENCE = 60.0


#: Problem types of a turn that ran and failed (as opposed to a message not taken).
_TURN_FAILURES = {
    "dependency-auth",
    "dependency-rejected-request",
    "dependency-quota-exceeded",
    "turn-failed",
    "step-limit-exceeded",
    "models-unavailable",
}


async def _session(client: httpx2.AsyncClient) -> str:
    for attempt in range(10):
        with contextlib.suppress(httpx2.HTTPError):
            response = await client.post("/api/v1/sessions", json={"agent": "calc"})
            if response.status_code == 201:
                return str(response.json()["id"])
        await asyncio.sleep(0.2 * (attempt + 1))
    raise RuntimeError("could not create a session")


async def _audit(
    client: httpx2.AsyncClient, sessions: list[str], report: ChaosReport, settle: float
) -> None:
    letters: set[str] = set()
    deadline = time.monotonic() + settle
    while True:
        pending = 0
        outcomes: Counter[str] = Counter()
        lost: list[str] = []
        response = await client.get("/api/v1/deadletters", params={"limit": 1000})
        pages = [await client.get(f"/api/v1/sessions/{s}/events") for s in sessions]
        unanswered = [p for p in [response, *pages] if p.status_code != 200]
        if unanswered and time.monotonic() < deadline:
            # e.g. 503 state-unavailable while the runtime resyncs with a restarted Redis
            await asyncio.sleep(0.2)
            continue
        for page in unanswered:
            page.raise_for_status()
        letters = {item["turn_id"] for item in response.json()["items"]}
        for page in pages:
            events = page.json()["items"]
            turns: dict[str, list[dict[str, Any]]] = {}
            for event in events:
                turns.setdefault(event["turn_id"], []).append(event)
            for turn_id, turn_events in turns.items():
                kinds = [e["type"] for e in turn_events]
                if "turn.completed" in kinds:
                    data = turn_events[kinds.index("turn.completed")]["data"]
                    outcomes["degraded" if data.get("degraded") else "answered"] += 1
                elif "turn.failed" in kinds:
                    if turn_id in letters:
                        outcomes["dead_lettered"] += 1
                    else:
                        lost.append(turn_id)
                else:
                    pending += 1
                    lost.append(turn_id)
        if pending == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    report.answered = outcomes["answered"]
    report.degraded = outcomes["degraded"]
    report.dead_lettered = outcomes["dead_lettered"]
    report.lost = len(lost)
    report.lost_turns = lost
    report.accepted = report.answered + report.degraded + report.dead_lettered + report.lost


async def run_chaos(
    *,
    turns: int = 400,
    sessions: int = 8,
    fault_rate: float = 0.2,
    redis_restarts: int = 1,
    seed: int = 7,
    state: str = "redis",
) -> ChaosReport:
    """Run the chaos load and audit it (see the module doc)."""
    rng = random.Random(seed)
    report = ChaosReport()
    script = ChaosScript(fault_rate, rng)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentfleet-chaos-") as workdir:
        async with contextlib.AsyncExitStack() as stack:
            primary = await stack.enter_async_context(running_fake_provider(script))
            fallback = await stack.enter_async_context(running_fake_provider())
            demo_server = await stack.enter_async_context(await _demo())
            demo = ResolvedMCPServer(
                name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=f"{demo_server.url}/mcp/"
            )
            redis: RedisServer | None = None
            state_settings = StateSettings()
            if state == "redis":
                redis = await stack.enter_async_context(_redis(Path(workdir)))
                state_settings = StateSettings(
                    backend="redis",
                    redis_url=redis.url,
                    lease_seconds=3,
                    sweep_interval_seconds=0.5,
                )
            settings = RuntimeSettings(
                log_level="ERROR", log_format="console", state=state_settings
            )
            config = RuntimeConfig(agents=[_agent(primary.url, fallback.url, demo)])
            app = create_app(settings, runtime_config=config)
            server = await stack.enter_async_context(running_server(app))
            client = await stack.enter_async_context(
                httpx2.AsyncClient(base_url=server.url, timeout=60)
            )
            for _ in range(500):
                if (await client.get("/healthz/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            ids = [await _session(client) for _ in range(sessions)]
            per_session = [turns // sessions + (i < turns % sessions) for i in range(sessions)]
            done = 0
            restart_points = sorted(
                int(turns * (i + 1) / (redis_restarts + 1)) for i in range(redis_restarts)
            )
            restarts: list[asyncio.Task[None]] = []

            async def restart() -> None:
                assert redis is not None
                await asyncio.to_thread(redis.restart)
                report.redis_restarts += 1

            async def load(session: str, count: int) -> None:
                nonlocal done
                for n in range(count):
                    report.sent += 1
                    await _post(client, session, f"calculate {n}*{len(session) % 7 + 2}", report)
                    done += 1
                    if redis is not None and restart_points and done >= restart_points[0]:
                        restart_points.pop(0)
                        restarts.append(asyncio.create_task(restart()))

            await asyncio.gather(*(load(s, c) for s, c in zip(ids, per_session, strict=True)))
            await asyncio.gather(*restarts)
            # Turns still running or being recovered settle first; the bound is generous
            # for loaded machines (the audit returns as soon as nothing is pending).
            await _audit(client, ids, report, settle=60)
    report.model_calls = script.calls
    report.faults = dict(script.injected)
    report.seconds = time.monotonic() - started
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state", choices=["redis", "memory"], default="redis")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    configure_logging("CRITICAL", "console")  # the resilience layer logs every retry
    logging.getLogger("uvicorn.error").disabled = True  # the fake's cut connections
    report = asyncio.run(
        run_chaos(
            turns=args.turns,
            sessions=args.sessions,
            fault_rate=args.fault_rate,
            redis_restarts=args.redis_restarts if args.state == "redis" else 0,
            seed=args.seed,
            state=args.state,
        )
    )
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print("\n".join(report.lines()))
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
