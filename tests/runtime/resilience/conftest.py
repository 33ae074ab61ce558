"""Helpers of the resilience tests: policies with few attempts and short timeouts, a
registry on a manual clock (sleeps are instant), and a recorder of resilience events."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet_crds.v1alpha1.agent import ModelSpec
from agentfleet_crds.v1alpha1.resiliencepolicy import (
    CategoryPolicy,
    CircuitBreakerOptions,
    ResiliencePolicySpec,
    RetryOptions,
)
from agentfleet_runtime.providers.factory import ProviderPool
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry, ResilienceSettings
from agentfleet_runtime.resilience.events import ResilienceEvent, metrics_and_logs
from agentfleet_runtime.resilience.llm import ModelChain
from agentfleet_runtime.state.settings import StateSettings


def category(
    *,
    attempts: int = 3,
    timeout: float = 5.0,
    threshold: int = 5,
    recovery: float = 30.0,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    jitter: str = "none",
    **extra: Any,
) -> CategoryPolicy:
    return CategoryPolicy(
        timeout_seconds=timeout,
        retry=RetryOptions(
            max_attempts=attempts,
            base_delay_seconds=base_delay,
            max_delay_seconds=max_delay,
            jitter=jitter,  # type: ignore[arg-type]
        ),
        circuit_breaker=CircuitBreakerOptions(
            failure_threshold=threshold, recovery_timeout_seconds=recovery
        ),
        **extra,
    )


def failing_fast_redis(url: str) -> StateSettings:
    """The Redis state backend with short timeouts: a stopped server is noticed in about a
    second, so degraded-mode tests do not wait on the defaults."""
    return StateSettings(
        backend="redis", redis_url=url, connect_timeout_seconds=0.5, socket_timeout_seconds=1.0
    )


def policy(**categories: CategoryPolicy) -> ResiliencePolicySpec:
    return ResiliencePolicySpec(**categories)


def chain(
    registry: ResilienceRegistry, pool: ProviderPool, *models: ModelSpec, **llm: Any
) -> ModelChain:
    """A model chain of agent ``agent`` (tenant ``team-a``) whose ``llm`` policy is
    :func:`category` of ``llm``."""
    return ModelChain(
        agent="agent",
        tenant="team-a",
        models=list(models),
        providers=pool,
        registry=registry,
        policy=policy(llm=category(**llm)),
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[ResilienceEvent] = []

    def __call__(self, event: ResilienceEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_registry(
    clock: ManualClock, recorder: Recorder | None = None, **settings: Any
) -> ResilienceRegistry:
    registry = ResilienceRegistry(
        ResilienceSettings(**settings), environment="production", clock=clock, rand=lambda: 1.0
    )
    if recorder is not None:
        registry.bus.subscribe(recorder)
    return registry


@pytest.fixture
def registry(clock: ManualClock, recorder: Recorder) -> ResilienceRegistry:
    return make_registry(clock, recorder)


__all__ = ["Recorder", "category", "make_registry", "metrics_and_logs", "policy"]


# -- a demo MCP server behind a fault injector -------------------------------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from agentfleet_runtime.testing.servers import running_server  # noqa: E402
from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi  # noqa: E402


@dataclass
class Fault:
    """What the next ``tools/call`` gets: an HTTP error status (with headers), or a delay
    before the real server answers."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Faults:
    queue: list[Fault] = field(default_factory=list)
    #: Every fault, forever (after the queue), e.g. a removed service.
    always: Fault | None = None
    tool_calls: int = 0

    def push(self, *faults: Fault) -> None:
        self.queue.extend(faults)


class FaultInjector:
    """ASGI middleware: reads a POST's JSON-RPC body and, for ``tools/call``, applies the
    next fault (real HTTP statuses and real latency, seen by the real MCP client)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        fault: Fault | None = None
        if b'"tools/call"' in body:
            self.faults.tool_calls += 1
            fault = self.faults.queue.pop(0) if self.faults.queue else self.faults.always
        if fault is not None and fault.status is not None:
            payload = json.dumps({"error": f"injected {fault.status}"}).encode()
            headers = [(b"content-type", b"application/json")]
            headers += [(k.encode(), v.encode()) for k, v in fault.headers.items()]
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


@contextlib.asynccontextmanager
async def faulty_demo(faults: Faults, *, port: int | None = None) -> AsyncIterator[str]:
    """The demo MCP server at ``<url>/mcp/`` behind a :class:`FaultInjector`; the URL
    stays valid across restarts when ``port`` is given back."""
    demo = demo_server_asgi()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with demo.lifespan():
            yield

    host = Starlette(routes=[Mount("/mcp", app=FaultInjector(demo.app, faults))], lifespan=lifespan)
    async with running_server(host, port=port) as server:
        yield f"{server.url}/mcp/"
