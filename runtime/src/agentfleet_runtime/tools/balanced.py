"""``BalancedToolServer``: one remote MCP server reachable at several endpoints — its
``url`` (often a load balancer or a Kubernetes Service) and the direct URLs of its replicas
(``MCPServer.spec.endpoints``) — as one :class:`~agentfleet_runtime.tools.base.ToolServer`.

* One :class:`~agentfleet_runtime.tools.mcp.client.MCPToolServer` per endpoint (its own
  connection, reconnects and error translation); every call is routed by an
  :class:`~agentfleet_runtime.resilience.balancer.EndpointSet`.
* **Preference**: ``url`` first while it is healthy (the load balancer knows the
  replicas' readiness and spreads load); the direct endpoints, weighted by recent latency
  and errors, take over while the breaker of ``url`` (``mcp:<server>@<url>``) refuses
  calls — a load balancer failure. When its recovery timeout has passed, the next call is
  its half-open trial; a success makes ``url`` preferred again.
* **Failover within a call**: an idempotent tool (annotated read-only or idempotent) moves
  to the next endpoint on any availability error; a tool with effects only when the
  request provably never left (the endpoint could not even be connected to, or it answered
  429/503 before doing anything).
* Tools are listed from a healthy endpoint (the same failover); the replicas are assumed
  to serve the same tools.
* The server's own pipeline ``mcp:<server>`` (retries, bulkhead, the server-wide breaker)
  stays around each call, in the :class:`~agentfleet_runtime.tools.registry.ToolRegistry`,
  which :meth:`BalancedToolServer.bind` s the endpoints' breakers to its
  :class:`~agentfleet_runtime.resilience.registry.ResilienceRegistry`; unbound (no
  resilience registry), the endpoints get breakers of their own with default options.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.resilience.balancer import Endpoint, EndpointSet, fails_over
from agentfleet_runtime.resilience.breaker import CircuitBreaker
from agentfleet_runtime.tools.base import ToolResult
from agentfleet_runtime.tools.mcp.client import MCPToolServer, ServerIdentity

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.pipeline import Pipeline
    from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["BalancedToolServer"]


class BalancedToolServer:
    """A :class:`~agentfleet_runtime.tools.base.ToolServer` over the endpoints of one
    remote MCP server (module doc)."""

    def __init__(self, config: ResolvedMCPServer, *, http_pool: HttpPool | None = None) -> None:
        """``http_pool``: the connection pool of each endpoint's client."""
        if config.url is None or not config.endpoints:
            raise ValueError(f"MCP server {config.name!r}: endpoints need a url")
        self.name = config.name
        self.config = config
        self.dependency = f"mcp:{config.name}"
        self._tiers: list[list[str | None]] = [[config.url], list(config.endpoints)]
        self.endpoints = EndpointSet(
            self.dependency, self._tiers, breaker=lambda name: CircuitBreaker(name)
        )
        self._servers: dict[str, MCPToolServer] = {
            endpoint.key: MCPToolServer(
                config.model_copy(update={"url": endpoint.url, "endpoints": []}),
                http_pool=http_pool,
            )
            for endpoint in self.endpoints.endpoints
        }
        self._lister: MCPToolServer | None = None
        #: Tools the server annotates read-only or idempotent (from the endpoint that
        #: listed them): called again elsewhere after a timeout or a dropped connection.
        self.idempotent_tools: frozenset[str] = frozenset()

    def bind(self, registry: ResilienceRegistry, pipeline: Pipeline) -> None:
        """Take the endpoints' breakers from ``registry``, configured like the server's
        own breaker (``pipeline``)."""
        self.endpoints = EndpointSet.from_registry(
            registry, self.dependency, self._tiers, pipeline.options.policy.circuit_breaker
        )

    def __repr__(self) -> str:
        urls = ", ".join(e.key for e in self.endpoints.endpoints)
        return f"BalancedToolServer({self.name!r}, [{urls}])"

    def server(self, endpoint: Endpoint | str) -> MCPToolServer:
        """The client of one endpoint (by endpoint or key)."""
        return self._servers[endpoint if isinstance(endpoint, str) else endpoint.key]

    @property
    def identity(self) -> ServerIdentity | None:
        """What the endpoint that listed the tools said about itself."""
        return self._lister.identity if self._lister is not None else None

    @property
    def protocol_version(self) -> str | None:
        return self._lister.protocol_version if self._lister is not None else None

    @property
    def closed(self) -> bool:
        return all(server.closed for server in self._servers.values())

    # -- ToolServer -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to one endpoint (the preferred healthy one, failing over)."""

        async def connect(endpoint: Endpoint) -> None:
            await self.server(endpoint).start()

        await self.endpoints.call(connect)

    async def list_tools(self, *, refresh: bool = False) -> list[ToolSpec]:
        """The tools, listed by a healthy endpoint (failing over)."""

        async def listing(endpoint: Endpoint) -> list[ToolSpec]:
            server = self.server(endpoint)
            specs = await server.list_tools(refresh=refresh)
            self._lister = server
            self.idempotent_tools = server.idempotent_tools
            return specs

        return await self.endpoints.call(listing)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, call_timeout: float | None = None
    ) -> ToolResult:
        """Run a tool on the chosen endpoint, failing over as the module doc says;
        ``call_timeout`` bounds each endpoint's call (the pipeline's attempt deadline)."""
        idempotent = name in self.idempotent_tools
        sent = False

        async def run(endpoint: Endpoint) -> ToolResult:
            nonlocal sent
            server = self.server(endpoint)
            sent = False
            await server.start()  # a failure here: the request never left
            sent = True
            return await server.call_tool(name, arguments, call_timeout=call_timeout)

        def failover(exc: BaseException) -> bool:
            return fails_over(exc, idempotent=idempotent or not sent)

        return await self.endpoints.call(run, failover=failover, deadline=call_timeout)

    async def aclose(self) -> None:
        await asyncio.gather(
            *(server.aclose() for server in self._servers.values()), return_exceptions=True
        )
