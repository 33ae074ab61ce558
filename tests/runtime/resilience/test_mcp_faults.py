"""MCP tool calls under real faults: the demo MCP server over streamable HTTP behind a
fault injector (real HTTP statuses and latency), killed and restarted; the real MCP
client; the tool registry with the ``mcp:<server>`` pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1.mcpserver import MCPTimeouts, MCPTransport
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry
from agentfleet_runtime.resilience.events import RetryScheduled
from agentfleet_runtime.testing.servers import free_port
from agentfleet_runtime.tools.mcp.client import MCPToolServer
from agentfleet_runtime.tools.registry import ToolRegistry

from .conftest import Fault, Faults, Recorder, category, faulty_demo, policy


def config(url: str, call: float = 5.0, **extra: object) -> ResolvedMCPServer:
    return ResolvedMCPServer(
        name="demo",
        transport=MCPTransport.STREAMABLE_HTTP,
        url=url,
        timeouts=MCPTimeouts(connect_seconds=2, call_seconds=call, discovery_seconds=2),
        **extra,  # type: ignore[arg-type]
    )


async def registry_for(
    url: str, registry: ResilienceRegistry, *, call: float = 5.0, **http: object
) -> ToolRegistry:
    tools = ToolRegistry(
        [MCPToolServer(config(url, call))],
        resilience=registry,
        policy=policy(http=category(**http)),  # type: ignore[arg-type]
    )
    await tools.start_all()
    return tools


@pytest.fixture
async def faults() -> Faults:
    return Faults()


@pytest.fixture
async def demo_url(faults: Faults) -> AsyncIterator[str]:
    async with faulty_demo(faults) as url:
        yield url


async def calc(tools: ToolRegistry, expression: str = "6*7") -> tuple[str, dict[str, object]]:
    result = await tools.call("calculate", {"expression": expression})
    return result.content, result.structured or {}


async def test_429_honours_retry_after(
    demo_url: str, faults: Faults, registry: ResilienceRegistry, clock: ManualClock
) -> None:
    tools = await registry_for(demo_url, registry, base_delay=0.1)
    faults.push(Fault(status=429, headers={"retry-after": "4"}))
    assert (await calc(tools))[0] == "42"
    assert faults.tool_calls == 2
    assert clock.slept == [4.0]
    await tools.aclose()


async def test_502_and_503_back_off(
    demo_url: str, faults: Faults, registry: ResilienceRegistry, clock: ManualClock
) -> None:
    tools = await registry_for(demo_url, registry, attempts=3, base_delay=0.5)
    faults.push(Fault(status=502), Fault(status=503))
    assert (await calc(tools))[0] == "42"
    assert faults.tool_calls == 3
    assert clock.slept == [0.5, 1.0]
    await tools.aclose()


async def test_401_is_not_retried_and_credentials_are_refreshed(
    demo_url: str, faults: Faults, registry: ResilienceRegistry, recorder: Recorder
) -> None:
    tools = await registry_for(demo_url, registry, attempts=3)
    faults.push(Fault(status=401), Fault(status=401))
    content, structured = await calc(tools)
    assert "unavailable" in content
    assert structured["retry"] is False
    # One pipeline attempt: the client re-read its credentials on a fresh connection and
    # sent the refused request once more; the resilience layer did not retry.
    assert faults.tool_calls == 2
    assert recorder.of(RetryScheduled) == []
    faults.push(Fault(status=401))  # refused once: the refresh fixes it
    assert (await calc(tools))[0] == "42"
    await tools.aclose()


async def test_network_timeout_is_retried_with_a_longer_timeout(
    demo_url: str, faults: Faults, registry: ResilienceRegistry, recorder: Recorder
) -> None:
    tools = await registry_for(demo_url, registry, call=0.3, attempts=3, timeout=10)
    faults.push(Fault(delay=0.4))  # slower than the first deadline, not the second
    assert (await calc(tools))[0] == "42"
    (retry,) = recorder.of(RetryScheduled)
    assert retry.error_class == "timeout"
    assert retry.next_timeout == pytest.approx(0.45)
    await tools.aclose()


async def test_a_removed_service_opens_the_breaker_and_tools_are_withdrawn(
    demo_url: str, faults: Faults, registry: ResilienceRegistry, clock: ManualClock
) -> None:
    tools = await registry_for(demo_url, registry, threshold=2, recovery=30)
    faults.always = Fault(status=410)
    for _ in range(2):
        content, structured = await calc(tools)
        assert structured["error"] == "unavailable"
        assert "deprecated" in content.lower() or "410" in content
    assert faults.tool_calls == 2  # deprecated: never retried
    content, structured = await calc(tools)
    assert "circuit breaker mcp:demo is open" in content
    assert structured["retry"] is False
    assert structured["retry_after_seconds"] == pytest.approx(30)
    assert faults.tool_calls == 2  # refused without a request
    assert tools.tools() == []  # the model is offered the alternatives only
    faults.always = None  # the service is back
    clock.advance(31)
    assert {t.name for t in tools.tools()} >= {"calculate"}
    assert (await calc(tools))[0] == "42"  # the trial call closes the breaker
    assert registry.find_breaker("mcp:demo").state == "closed"
    await tools.aclose()


async def test_a_killed_and_restarted_server(
    registry: ResilienceRegistry, clock: ManualClock
) -> None:
    port = free_port()
    faults = Faults()
    async with faulty_demo(faults, port=port) as url:
        tools = await registry_for(url, registry, attempts=2, threshold=2, recovery=10)
        assert (await calc(tools))[0] == "42"
    # killed: calls fail fast with a structured result, then the breaker opens
    for _ in range(2):
        content, structured = await calc(tools)
        assert structured["error"] == "unavailable"
    assert registry.find_breaker("mcp:demo").state == "open"
    content, _ = await calc(tools)
    assert "is open" in content
    async with faulty_demo(faults, port=port):
        clock.advance(11)
        assert (await calc(tools))[0] == "42"
        assert registry.find_breaker("mcp:demo").state == "closed"
        await tools.aclose()


async def test_mesh_retried_servers_get_one_attempt(
    demo_url: str, faults: Faults, registry: ResilienceRegistry
) -> None:
    tools = ToolRegistry(
        [MCPToolServer(config(demo_url, mesh_retries=True))],
        resilience=registry,
        policy=policy(http=category(attempts=3)),
    )
    await tools.start_all()
    faults.push(Fault(status=503))
    _content, structured = await calc(tools)
    assert structured["error"] == "unavailable"
    assert faults.tool_calls == 1  # the mesh retries this hop: never both
    await tools.aclose()


async def test_non_idempotent_tools_are_not_retried_after_a_timeout(
    demo_url: str, faults: Faults, registry: ResilienceRegistry
) -> None:
    tools = await registry_for(demo_url, registry, call=0.2, attempts=3)
    faults.push(Fault(delay=0.4))
    result = await tools.call("remember", {"key": "k", "value": "v"})  # has effects
    assert result.is_error
    assert faults.tool_calls == 1
    faults.push(Fault(status=503))  # refused before running: safe to repeat
    result = await tools.call("remember", {"key": "k", "value": "v"})
    assert not result.is_error
    assert faults.tool_calls == 3
    await tools.aclose()
