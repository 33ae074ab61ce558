"""``ToolRegistry``: the tools of one agent, gathered from its tool servers.

* :meth:`ToolRegistry.start_all` connects every server concurrently and lists its tools,
  each bounded; a server that fails is recorded as unavailable (with the reason) and does not
  hold up the others. :meth:`ToolRegistry.refresh` tries the unavailable ones again.
* :meth:`ToolRegistry.tools` is the catalogue offered to the model. Names are unique: a name
  offered by several servers is exposed as ``<server>__<tool>`` on each, and characters
  model APIs refuse in tool names (anything but ``A-Za-z0-9_-``, 64 at most) are replaced.
* :meth:`ToolRegistry.call` never raises for a tool failure: an unknown tool, a server that
  is down or a call that failed comes back as a :class:`ToolResult` with ``is_error`` whose
  text tells the model what happened, and not to call a broken tool again in this turn.
* :meth:`ToolRegistry.health` reports per-server status for readiness and diagnostics.
* With a :class:`~agentfleet_runtime.resilience.registry.ResilienceRegistry`, every call
  goes through the server's pipeline ``mcp:<server>`` (``http`` category: breaker,
  retries of idempotent tools, progressive timeout, bulkhead); while the server's breaker
  refuses calls its tools are not offered to the model, and a call still made gets a
  structured "unavailable, do not retry" result at once.
* :meth:`ToolRegistry.reload` reconnects one server and lists its tools again (hot reload,
  ``POST /api/v1/mcp-servers/{name}/refresh``): the next model call of the agent is
  offered the new list.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
)
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.tools.base import ToolResult, ToolServer
from agentfleet_runtime.tools.mcp.client import CLOSE_TIMEOUT_SECONDS, MCPToolServer

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.pipeline import Attempt, Pipeline
    from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["ServerHealth", "ServerStatus", "ToolRegistry", "create_tool_server"]

log = logging.getLogger(__name__)

ServerStatus = Literal["pending", "available", "unavailable", "closed"]

#: Start-up bound for a tool server that is not an :class:`MCPToolServer` (whose own
#: connect and discovery timeouts give its bound).
DEFAULT_START_TIMEOUT_SECONDS: Final = 30.0
#: Tool names model APIs accept (OpenAI: ``^[a-zA-Z0-9_-]{1,64}$``; Anthropic is laxer).
MAX_TOOL_NAME_LENGTH: Final = 64
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
#: Separator between a server's name and a tool's name when names clash.
PREFIX_SEPARATOR: Final = "__"


def create_tool_server(config: ResolvedMCPServer) -> ToolServer:
    """The :class:`ToolServer` for an MCP server (stdio or streamable HTTP)."""
    return MCPToolServer(config)


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One tool server's state as the registry last saw it."""

    name: str
    status: ServerStatus
    tools: int = 0
    #: Why the server is unavailable (or what its last call failure was).
    reason: str | None = None
    #: Wall-clock time of the last status change.
    since: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "tools": self.tools,
            "reason": self.reason,
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class _Route:
    server: ToolServer
    tool: str  # the name the server knows the tool by
    #: Safe to call again after a timeout or a dropped connection (annotated read-only or
    #: idempotent by its server).
    idempotent: bool = False


def _model_safe(name: str) -> str:
    return _INVALID_NAME_CHARS.sub("_", name)[:MAX_TOOL_NAME_LENGTH] or "tool"


class ToolRegistry:
    """The tool servers of one agent and the catalogue of their tools."""

    def __init__(
        self,
        servers: Sequence[ToolServer],
        *,
        default_start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS,
        resilience: ResilienceRegistry | None = None,
        policy: ResiliencePolicySpec | None = None,
    ) -> None:
        """``resilience``/``policy``: call each server through its pipeline."""
        names = [server.name for server in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"tool server names must be unique, got {names}")
        self._servers: dict[str, ToolServer] = {server.name: server for server in servers}
        self._default_start_timeout = default_start_timeout
        now = time.time()
        self._health: dict[str, ServerHealth] = {
            name: ServerHealth(name=name, status="pending", since=now) for name in names
        }
        self._server_tools: dict[str, list[ToolSpec]] = {}
        self._specs: list[ToolSpec] = []
        self._routes: dict[str, _Route] = {}
        self._pipelines: dict[str, Pipeline] = {}
        if resilience is not None:
            for server in servers:
                mesh = isinstance(server, MCPToolServer) and server.config.mesh_retries
                self._pipelines[server.name] = resilience.pipeline(
                    f"mcp:{server.name}", "http", policy, mesh_retries=mesh
                )

    # -- lifecycle ------------------------------------------------------------------------

    async def start_all(self) -> None:
        """Connect every server and list its tools, concurrently and each bounded. Never
        raises for a server's failure: it is recorded as unavailable."""
        await self._start(list(self._servers.values()))

    async def refresh(self) -> None:
        """Try again the servers that are unavailable (or never started)."""
        retry = [
            server
            for name, server in self._servers.items()
            if self._health[name].status in ("pending", "unavailable")
        ]
        if retry:
            await self._start(retry)

    async def reload(self, name: str) -> ServerHealth:
        """Reconnect server ``name`` on a fresh connection and list its tools again; the
        catalogue then offers what it lists now (nothing, if it is down). An MCP server
        gets a new client (its old one is closed afterwards: a call in flight on it fails
        as a dropped connection). Bounded like start-up; never raises for the server's
        failure. ``KeyError`` for a server this registry does not have."""
        old = self._servers[name]
        fresh = create_tool_server(old.config) if isinstance(old, MCPToolServer) else old
        self._servers[name] = fresh
        self._server_tools.pop(name, None)
        self._mark(name, "pending", None, tools=0)
        await self._start_one(fresh)
        self._rebuild()
        if fresh is not old:
            await self._close(old)
        return self._health[name]

    def servers(self) -> dict[str, ToolServer]:
        """The tool servers, by name."""
        return dict(self._servers)

    def server_tools(self, name: str) -> list[ToolSpec]:
        """The tools server ``name`` listed (by their own names; empty until it started)."""
        return list(self._server_tools.get(name, []))

    async def _start(self, servers: list[ToolServer]) -> None:
        async with asyncio.TaskGroup() as group:
            for server in servers:
                group.create_task(self._start_one(server), name=f"start tool server {server.name}")
        self._rebuild()

    def _start_timeout(self, server: ToolServer) -> float:
        if isinstance(server, MCPToolServer):
            timeouts = server.config.timeouts
            return timeouts.connect_seconds + timeouts.discovery_seconds + CLOSE_TIMEOUT_SECONDS
        return self._default_start_timeout

    async def _start_one(self, server: ToolServer) -> None:
        bound = self._start_timeout(server)
        try:
            async with asyncio.timeout(bound):
                await server.start()
                specs = await server.list_tools()
        except DependencyError as exc:
            self._mark(server.name, "unavailable", exc.detail)
        except TimeoutError:
            self._mark(server.name, "unavailable", f"did not start within {bound:g}s")
        except Exception as exc:  # a failing tool server must not stop the agent
            log.exception("tool server %s failed to start", server.name)
            self._mark(server.name, "unavailable", f"{type(exc).__name__}: {exc}")
        else:
            self._server_tools[server.name] = specs
            self._mark(server.name, "available", None, tools=len(specs))
            return
        log.warning(
            "tool server %s is unavailable: %s",
            server.name,
            self._health[server.name].reason,
            extra={"tool_server": server.name},
        )

    def _mark(
        self, name: str, status: ServerStatus, reason: str | None, *, tools: int | None = None
    ) -> None:
        previous = self._health[name]
        count = previous.tools if tools is None else tools
        since = previous.since if previous.status == status else time.time()
        self._health[name] = ServerHealth(
            name=name, status=status, tools=count, reason=reason, since=since
        )

    async def aclose(self) -> None:
        """Close every server, concurrently; bounded, and never raises."""

        async def close(server: ToolServer) -> None:
            await self._close(server)
            self._mark(server.name, "closed", None)

        async with asyncio.TaskGroup() as group:
            for server in self._servers.values():
                group.create_task(close(server))

    @staticmethod
    async def _close(server: ToolServer) -> None:
        try:
            async with asyncio.timeout(2 * CLOSE_TIMEOUT_SECONDS + 1):
                await server.aclose()
        except Exception:
            log.warning("tool server %s did not close cleanly", server.name, exc_info=True)

    # -- catalogue ------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Recompute the catalogue from the tools of the servers that started."""
        listed = [
            (name, spec)
            for name in self._servers  # keep the servers' order
            for spec in self._server_tools.get(name, [])
        ]
        counts = Counter(_model_safe(spec.name) for _, spec in listed)
        specs: list[ToolSpec] = []
        routes: dict[str, _Route] = {}
        for server_name, spec in listed:
            exposed = _model_safe(spec.name)
            if counts[exposed] > 1:
                exposed = _model_safe(f"{server_name}{PREFIX_SEPARATOR}{spec.name}")
            if exposed in routes:
                log.warning(
                    "tool %s of server %s is hidden: its name clashes with another tool's",
                    spec.name,
                    server_name,
                    extra={"tool_server": server_name},
                )
                continue
            server = self._servers[server_name]
            idempotent = isinstance(server, MCPToolServer) and spec.name in server.idempotent_tools
            routes[exposed] = _Route(server=server, tool=spec.name, idempotent=idempotent)
            specs.append(ToolSpec(exposed, spec.description, spec.input_schema))
        self._specs, self._routes = specs, routes

    def tools(self) -> list[ToolSpec]:
        """The tools offered to the model, with unique names (without the tools of a
        server whose circuit breaker refuses calls right now)."""
        pipelines = self._pipelines
        if pipelines and any(p.refusing for p in pipelines.values()):
            refusing = {name for name, p in pipelines.items() if p.refusing}
            return [
                spec for spec in self._specs if self._routes[spec.name].server.name not in refusing
            ]
        return list(self._specs)

    def health(self) -> dict[str, ServerHealth]:
        """Per-server status, keyed by server name."""
        return dict(self._health)

    @property
    def degraded(self) -> bool:
        """Whether some server is unavailable."""
        return any(h.status == "unavailable" for h in self._health.values())

    # -- calls ----------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run a tool. Failures come back as ``is_error`` results, never as exceptions."""
        route = self._routes.get(name)
        if route is None:
            offered = ", ".join(sorted(self._routes)) or "none"
            return ToolResult(
                content=f"Unknown tool {name!r}. The tools available are: {offered}.",
                is_error=True,
            )
        server = route.server
        try:
            pipeline = self._pipelines.get(server.name)
            if pipeline is None:
                result = await server.call_tool(route.tool, arguments)
            else:
                result = await self._call_guarded(pipeline, route, arguments)
        except CircuitOpenError as exc:
            return self._unavailable(name, server.name, exc.detail, retry_after=exc.retry_after)
        except DependencyError as exc:
            # Unreachable or refusing our credentials: the server is down. A slow or failed
            # call is this call's problem: the server keeps its status, with the reason.
            down = isinstance(exc, DependencyConnectionError | DependencyAuthError)
            status = "unavailable" if down else self._health[server.name].status
            self._mark(server.name, status, exc.detail)
            return self._unavailable(name, server.name, exc.detail)
        except Exception as exc:  # a broken adapter must not break the turn
            log.exception("tool %s on server %s raised", name, server.name)
            reason = f"{type(exc).__name__}: {exc}"
            self._mark(server.name, "unavailable", reason)
            return self._unavailable(name, server.name, reason)
        if self._health[server.name].status != "available":
            self._mark(server.name, "available", None)
            log.info("tool server %s is available again", server.name)
        return result

    @staticmethod
    async def _call_guarded(
        pipeline: Pipeline, route: _Route, arguments: dict[str, Any]
    ) -> ToolResult:
        server = route.server
        if isinstance(server, MCPToolServer):
            mcp_server = server

            async def call(attempt: Attempt) -> ToolResult:
                return await mcp_server.call_tool(
                    route.tool, arguments, call_timeout=attempt.timeout
                )

            timeout = min(server.config.timeouts.call_seconds, pipeline.timeout)
            return await pipeline.execute(
                call, attempt_timeout=timeout, idempotent=route.idempotent
            )

        async def plain(_attempt: Attempt) -> ToolResult:
            return await server.call_tool(route.tool, arguments)

        return await pipeline.execute(plain, idempotent=route.idempotent)

    @staticmethod
    def _unavailable(
        tool: str, server: str, reason: str, *, retry_after: float | None = None
    ) -> ToolResult:
        return ToolResult(
            content=(
                f"Tool {tool} is unavailable (server {server}: {reason}). "
                "Do not call it again in this turn."
            ),
            is_error=True,
            structured={
                "error": "unavailable",
                "tool": tool,
                "server": server,
                "reason": reason,
                "retry": False,
                "retry_after_seconds": retry_after,
            },
        )
