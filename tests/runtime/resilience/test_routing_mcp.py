"""Health-based routing of MCP calls, with real streamable-HTTP MCP servers. Scenario
"load balancer failure → direct endpoint communication with a circuit breaker": an
MCPServer whose ``url`` is a load balancer (a TCP proxy in front of replica A) and whose
``endpoints`` are the replicas' direct URLs. The LB is cut: calls go to the replicas, the
LB's breaker opens, tool calls keep succeeding; the LB is restored: its half-open trial
succeeds and it is preferred again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from agentfleet_crds.contract import ResolvedMCPServer, resolve_mcp_server
from agentfleet_crds.v1alpha1.mcpserver import MCPServer, MCPTimeouts, MCPTransport
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry
from agentfleet_runtime.resilience.balancer import endpoint_key
from agentfleet_runtime.testing.proxy import TcpProxy
from agentfleet_runtime.tools.balanced import BalancedToolServer
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

from .conftest import Fault, Faults, category, faulty_demo, policy


@dataclass
class Cluster:
    """Two replicas of the demo server and a "load balancer" in front of replica A."""

    lb: TcpProxy
    lb_url: str
    a_url: str
    b_url: str
    a: Faults
    b: Faults

    def config(self) -> ResolvedMCPServer:
        return ResolvedMCPServer(
            name="demo",
            transport=MCPTransport.STREAMABLE_HTTP,
            url=self.lb_url,
            endpoints=[self.a_url, self.b_url],
            timeouts=MCPTimeouts(connect_seconds=2, call_seconds=5, discovery_seconds=2),
        )

    @property
    def direct_calls(self) -> int:
        return self.a.tool_calls + self.b.tool_calls


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    a, b = Faults(), Faults()
    async with faulty_demo(a) as a_url, faulty_demo(b) as b_url:
        port = urlsplit(a_url).port
        assert port is not None
        async with TcpProxy("127.0.0.1", port) as lb:
            yield Cluster(lb, f"{lb.url}/mcp/", a_url, b_url, a, b)


async def registry_for(cluster: Cluster, registry: ResilienceRegistry) -> ToolRegistry:
    tools = ToolRegistry(
        [create_tool_server(cluster.config())],
        resilience=registry,
        policy=policy(http=category(threshold=2, recovery=30)),
    )
    await tools.start_all()
    return tools


async def calc(tools: ToolRegistry) -> str:
    return (await tools.call("calculate", {"expression": "6*7"})).content


async def test_load_balancer_failure_falls_back_to_direct_endpoints(
    cluster: Cluster, registry: ResilienceRegistry, clock: ManualClock
) -> None:
    tools = await registry_for(cluster, registry)
    assert tools.health()["demo"].status == "available"
    server = tools.servers()["demo"]
    assert isinstance(server, BalancedToolServer)
    lb = server.endpoints.get(endpoint_key(cluster.lb_url))
    assert lb.breaker is registry.find_breaker(f"mcp:demo@{lb.key}")

    # Healthy: every call goes through the load balancer (the preferred tier).
    for _ in range(5):
        assert await calc(tools) == "42"
    assert lb.selected >= 5
    assert cluster.a.tool_calls == 5
    assert cluster.b.tool_calls == 0

    # The load balancer fails: its connections drop and new ones are refused.
    cluster.lb.refuse = True
    cluster.lb.cut()
    before = cluster.direct_calls
    for _ in range(10):  # the tool calls of a turn keep succeeding
        assert await calc(tools) == "42"
    assert cluster.direct_calls - before == 10  # every call ran once, on a replica
    assert lb.breaker.state == "open"  # ejected after 2 failures (the policy's threshold)
    assert registry.find_breaker("mcp:demo").state == "closed"  # the server is fine
    assert [t.name for t in tools.tools()].count("calculate") == 1  # still offered
    selected = lb.selected
    for _ in range(5):
        assert await calc(tools) == "42"
    assert lb.selected == selected  # ejected: not even tried
    assert cluster.a.tool_calls
    assert cluster.b.tool_calls
    # A tool with effects runs on a replica too (the ejected LB is not tried).
    stored = await tools.call("remember", {"key": "city", "value": "Lyon"})
    assert not stored.is_error, stored.content

    # The LB comes back; after the breaker's recovery timeout, a trial call re-admits it.
    cluster.lb.restore()
    clock.advance(30)
    assert await calc(tools) == "42"
    assert lb.breaker.state == "closed"
    selected, direct = lb.selected, cluster.direct_calls
    for _ in range(5):
        assert await calc(tools) == "42"
    assert lb.selected == selected + 5  # preferred again
    assert cluster.a.tool_calls + cluster.b.tool_calls == direct + 5  # A behind the LB
    await tools.aclose()


async def test_tools_are_listed_from_a_healthy_endpoint_when_the_lb_is_down(
    cluster: Cluster, registry: ResilienceRegistry
) -> None:
    cluster.lb.refuse = True
    tools = await registry_for(cluster, registry)
    health = tools.health()["demo"]
    assert health.status == "available", health.reason
    assert "calculate" in {t.name for t in tools.tools()}
    assert await calc(tools) == "42"
    assert cluster.direct_calls == 1
    await tools.aclose()


async def test_a_tool_with_effects_is_not_sent_twice(
    cluster: Cluster, registry: ResilienceRegistry
) -> None:
    """A replica answering 502 to `remember` may have stored the note: no failover.
    Throttled (429) proves it did nothing: the next endpoint gets it."""
    config = cluster.config().model_copy(
        update={"url": cluster.a_url, "endpoints": [cluster.b_url]}
    )
    tools = ToolRegistry(
        [create_tool_server(config)],
        resilience=registry,
        policy=policy(http=category(attempts=1, threshold=5)),
    )
    await tools.start_all()
    cluster.a.push(Fault(status=502))
    result = await tools.call("remember", {"key": "k", "value": "v"})
    assert result.is_error
    assert (cluster.a.tool_calls, cluster.b.tool_calls) == (1, 0)

    cluster.a.push(Fault(status=429))
    result = await tools.call("remember", {"key": "k", "value": "v"})
    assert not result.is_error
    assert (cluster.a.tool_calls, cluster.b.tool_calls) == (2, 1)

    cluster.a.push(Fault(status=502))  # a read-only tool may run again elsewhere
    assert await calc(tools) == "42"
    assert (cluster.a.tool_calls, cluster.b.tool_calls) == (3, 2)
    await tools.aclose()


async def test_without_a_resilience_registry_endpoints_have_breakers_of_their_own(
    cluster: Cluster,
) -> None:
    server = create_tool_server(cluster.config())
    assert isinstance(server, BalancedToolServer)
    await server.start()
    assert "calculate" in {t.name for t in await server.list_tools()}
    cluster.lb.refuse = True
    cluster.lb.cut()
    result = await server.call_tool("calculate", {"expression": "1+1"})
    assert result.content == "2"
    await server.aclose()


# -- the resource and the contract -------------------------------------------------------


def mcp_server(**spec: object) -> MCPServer:
    return MCPServer.model_validate(
        {"metadata": {"name": "search", "namespace": "team-a"}, "spec": spec}
    )


def test_the_contract_carries_the_endpoints() -> None:
    server = mcp_server(
        url="http://search.team-a.svc:8080/mcp",
        endpoints=["http://10.0.0.7:8080/mcp", "http://10.0.0.8:8080/mcp"],
    )
    resolved = resolve_mcp_server(server)
    assert resolved.url == "http://search.team-a.svc:8080/mcp"
    assert resolved.endpoints == ["http://10.0.0.7:8080/mcp", "http://10.0.0.8:8080/mcp"]
    assert isinstance(create_tool_server(resolved), BalancedToolServer)
    assert not isinstance(
        create_tool_server(resolve_mcp_server(mcp_server(url="http://x/mcp"))),
        BalancedToolServer,
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"stdio": {"command": "srv"}, "endpoints": ["http://a/mcp"]}, "endpoints needs url"),
        ({"url": "http://lb/mcp", "endpoints": ["ftp://a/mcp"]}, "endpoints.0"),
        ({"url": "http://lb/mcp", "endpoints": ["http://a/mcp", "http://a/mcp/"]}, "twice"),
        (
            {"url": "http://lb/mcp", "endpoints": [f"http://a{i}/mcp" for i in range(9)]},
            "endpoints",
        ),
    ],
)
def test_invalid_endpoints_are_refused_naming_the_field(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        mcp_server(**spec)
    assert message in str(refused.value)
