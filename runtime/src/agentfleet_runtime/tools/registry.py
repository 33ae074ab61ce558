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
* :meth:`ToolRegistry.reload` is a hot reload with a health-checked switch-over (``POST
  /api/v1/mcp-servers/{name}/refresh``, ``PUT /api/v1/mcp-servers/{name}``): a NEW
  connection (to the server's new config, if it changed) is opened, initialised, its tools
  listed and its pins checked while the old one keeps serving; only then is it swapped in
  (the next model call is offered the new list), and the old connection is closed once its
  calls in flight have finished (bounded). A new connection that fails its checks is closed
  and the old one keeps serving (rolled back): :class:`ReloadResult` says which.
* Pins (``spec.tools[].pinnedTools``, :attr:`ResolvedMCPServer.pinned_tools`): a pinned tool
  the server no longer lists, or lists with another input-schema hash
  (:func:`agentfleet_crds.toolschema.input_schema_hash`), is withheld from the model and
  reported in :meth:`ToolRegistry.health` (``incompatible_tools``), in the metric
  ``agentfleet_mcp_tool_schema_mismatch`` and the log; a call to it gets a structured
  "unavailable" result. The server's other tools keep serving.
* The MCP protocol version each connection negotiated and the server's ``serverInfo`` are
  in :meth:`ToolRegistry.health` and the metric ``agentfleet_mcp_server_info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.toolschema import input_schema_hash
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
)
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.tools.balanced import BalancedToolServer
from agentfleet_runtime.tools.base import ToolResult, ToolServer
from agentfleet_runtime.tools.mcp.client import (
    CLOSE_TIMEOUT_SECONDS,
    MCPToolServer,
    ServerIdentity,
)

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.pipeline import Attempt, Pipeline
    from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = [
    "ReloadOutcome",
    "ReloadResult",
    "ServerHealth",
    "ServerStatus",
    "ToolMismatch",
    "ToolRegistry",
    "check_pins",
    "create_tool_server",
]

log = logging.getLogger(__name__)

ServerStatus = Literal["pending", "available", "unavailable", "closed"]
#: ``switched``: the new connection passed its checks and serves; ``rolled_back``: it
#: failed them and the old connection, which was serving, keeps serving; ``failed``: it
#: failed them and nothing was serving (a changed config is not adopted either).
ReloadOutcome = Literal["switched", "rolled_back", "failed"]

#: Start-up bound for a tool server that is not an :class:`MCPToolServer` (whose own
#: connect and discovery timeouts give its bound).
DEFAULT_START_TIMEOUT_SECONDS: Final = 30.0
#: Tool names model APIs accept (OpenAI: ``^[a-zA-Z0-9_-]{1,64}$``; Anthropic is laxer).
MAX_TOOL_NAME_LENGTH: Final = 64
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
#: Separator between a server's name and a tool's name when names clash.
PREFIX_SEPARATOR: Final = "__"


def create_tool_server(
    config: ResolvedMCPServer, *, http_pool: HttpPool | None = None
) -> ToolServer:
    """The :class:`ToolServer` for an MCP server (stdio or streamable HTTP; a remote one
    with ``endpoints`` is balanced over them, :mod:`agentfleet_runtime.tools.balanced`)."""
    if config.endpoints and config.url is not None:
        return BalancedToolServer(config, http_pool=http_pool)
    return MCPToolServer(config, http_pool=http_pool)


@dataclass(frozen=True, slots=True)
class ToolMismatch:
    """A pinned tool the server does not serve as pinned: withheld from the model."""

    tool: str
    #: The pinned input-schema hash.
    expected: str
    #: The hash of the schema the server lists now; ``None``: it does not list the tool.
    actual: str | None

    @property
    def reason(self) -> str:
        if self.actual is None:
            return f"pinned tool {self.tool!r} is not listed by the server"
        return (
            f"pinned tool {self.tool!r} changed its input schema "
            f"(pinned {self.expected}, listed {self.actual})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "expected": self.expected, "actual": self.actual}


def check_pins(specs: Sequence[ToolSpec], pins: Mapping[str, str] | None) -> list[ToolMismatch]:
    """The pinned tools that ``specs`` (a server's listing) do not serve as pinned."""
    if not pins:
        return []
    listed = {spec.name: spec for spec in specs}
    mismatches: list[ToolMismatch] = []
    for tool, expected in sorted(pins.items()):
        spec = listed.get(tool)
        actual = None if spec is None else input_schema_hash(spec.input_schema)
        if actual != expected:
            mismatches.append(ToolMismatch(tool=tool, expected=expected, actual=actual))
    return mismatches


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
    #: The MCP protocol version and ``serverInfo`` of the serving connection.
    protocol_version: str | None = None
    server_name: str | None = None
    server_version: str | None = None
    #: Pinned tools withheld from the model (missing, or listed with another schema).
    incompatible_tools: tuple[ToolMismatch, ...] = ()
    #: The last hot reload's outcome, and why it did not switch.
    last_reload: ReloadOutcome | None = None
    last_reload_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "tools": self.tools,
            "reason": self.reason,
            "since": self.since,
            "protocol_version": self.protocol_version,
            "server_name": self.server_name,
            "server_version": self.server_version,
            "incompatible_tools": [m.as_dict() for m in self.incompatible_tools],
            "last_reload": self.last_reload,
            "last_reload_reason": self.last_reload_reason,
        }


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What :meth:`ToolRegistry.reload` did with one server."""

    server: str
    outcome: ReloadOutcome
    health: ServerHealth
    #: Why the new connection failed its checks (``None`` when it switched).
    reason: str | None = None


class _CheckFailedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _InFlight:
    """Calls running on one tool server object: a replaced server is closed once idle."""

    __slots__ = ("count", "idle")

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


def _config_of(server: ToolServer) -> ResolvedMCPServer | None:
    config = getattr(server, "config", None)
    return config if isinstance(config, ResolvedMCPServer) else None


def _identity_of(server: ToolServer) -> ServerIdentity | None:
    identity = getattr(server, "identity", None)
    return identity if isinstance(identity, ServerIdentity) else None


def _retarget(server: ResolvedMCPServer, agent: ResolvedMCPServer) -> ResolvedMCPServer:
    """A server's new definition with the agent's own fields (its allowed and pinned
    tools) taken from ``agent``, the definition the agent was loaded with."""
    return server.model_copy(
        update={"allowed_tools": agent.allowed_tools, "pinned_tools": agent.pinned_tools}
    )


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
        drain_seconds: float | None = None,
        tool_list_ttl: float = 0.0,
        http_pool: HttpPool | None = None,
    ) -> None:
        """``resilience``/``policy``: call each server through its pipeline;
        ``drain_seconds``: how long a replaced connection's calls in flight may run before
        it is closed (``None``: the server's ``timeouts.callSeconds``); ``tool_list_ttl``:
        seconds a server's tool list is trusted before it is listed again, in the
        background, on its open connection (0: only at start and on reload);
        ``http_pool``: the pool of connections a reload opens."""
        names = [server.name for server in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"tool server names must be unique, got {names}")
        self._servers: dict[str, ToolServer] = {server.name: server for server in servers}
        self._default_start_timeout = default_start_timeout
        self._drain_seconds = drain_seconds
        self._tool_list_ttl = tool_list_ttl
        self._http_pool = http_pool
        #: When each server's tools were last listed (monotonic), for the TTL.
        self._listed_at: dict[str, float] = {}
        self._relisting: asyncio.Task[None] | None = None
        now = time.time()
        self._health: dict[str, ServerHealth] = {
            name: ServerHealth(name=name, status="pending", since=now) for name in names
        }
        self._server_tools: dict[str, list[ToolSpec]] = {}
        self._specs: list[ToolSpec] = []
        self._routes: dict[str, _Route] = {}
        #: Exposed tool name → (server, why) for pinned tools withheld from the model.
        self._withheld: dict[str, tuple[str, str]] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._in_flight: dict[ToolServer, _InFlight] = {}
        #: Replaced servers not closed yet (draining their calls in flight).
        self._replaced: set[ToolServer] = set()
        self._reload_locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        #: What this registry contributes to the MCP info / schema-mismatch gauges.
        self._info_labels: dict[str, tuple[str, str, str]] = {}
        self._flagged: dict[str, frozenset[str]] = {}
        self._resilience = resilience
        if resilience is not None:
            for server in servers:
                mesh = isinstance(server, MCPToolServer) and server.config.mesh_retries
                self._pipelines[server.name] = resilience.pipeline(
                    f"mcp:{server.name}", "http", policy, mesh_retries=mesh
                )
                self._bind(server)

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

    async def reload(self, name: str, config: ResolvedMCPServer | None = None) -> ReloadResult:
        """Hot reload of server ``name`` with a health-checked switch-over (see the module
        doc). ``config``: the server's new definition (URL, headers, timeouts...; the
        agent's own ``allowed_tools`` and ``pinned_tools`` are kept); ``None``: the same
        one, on a fresh connection (a refresh).

        Checks of the new connection: it connects and negotiates a protocol version, lists
        its tools, and — for a changed config — withholds no pinned tool the current
        connection serves. A refresh of the same config accepts what the server lists now
        (the old connection talks to the same server): changed pinned tools are withheld
        and flagged. Bounded like start-up; never raises for the server's failure.
        ``KeyError`` for a server this registry does not have."""
        if name not in self._servers:
            raise KeyError(name)
        async with self._reload_locks.setdefault(name, asyncio.Lock()):
            return await self._reload(name, self._servers[name], config)

    async def _reload(
        self, name: str, old: ToolServer, config: ResolvedMCPServer | None
    ) -> ReloadResult:
        before = self._health[name]
        current = _config_of(old)
        if current is None:  # not built from a config: list again on the same server
            try:
                specs, mismatches = await self._check(old)
            except _CheckFailedError as failed:
                return self._reload_failed(name, before, failed.reason, adopt_reason=True)
            self._accept(old, specs, mismatches)
            self._rebuild()
            return self._reloaded(name, "switched")
        wanted = current if config is None else _retarget(config, current)
        changed = wanted != current
        fresh = create_tool_server(wanted, http_pool=self._http_pool)
        self._bind(fresh)
        try:
            specs, mismatches = await self._check(fresh)
            if changed and before.status == "available":
                serving = {m.tool for m in before.incompatible_tools}
                broken = [m for m in mismatches if m.tool not in serving]
                if broken:
                    raise _CheckFailedError("; ".join(m.reason for m in broken))
        except _CheckFailedError as failed:
            await self._close(fresh)
            return self._reload_failed(name, before, failed.reason, adopt_reason=not changed)
        self._servers[name] = fresh
        self._accept(fresh, specs, mismatches)
        self._rebuild()
        self._retire(old)
        log.info(
            "tool server %s switched over to a new connection%s",
            name,
            " (config changed)" if changed else "",
            extra={"tool_server": name, "config_changed": changed},
        )
        return self._reloaded(name, "switched")

    def _reload_failed(
        self, name: str, before: ServerHealth, reason: str, *, adopt_reason: bool
    ) -> ReloadResult:
        outcome: ReloadOutcome = "rolled_back" if before.status == "available" else "failed"
        if outcome == "failed" and adopt_reason:  # nothing serving: why, as of now
            self._mark(name, "unavailable", reason)
        log.warning(
            "tool server %s: reload %s: %s",
            name,
            "rolled back (the old connection keeps serving)"
            if outcome == "rolled_back"
            else "failed",
            reason,
            extra={"tool_server": name, "outcome": outcome},
        )
        return self._reloaded(name, outcome, reason)

    def _reloaded(
        self, name: str, outcome: ReloadOutcome, reason: str | None = None
    ) -> ReloadResult:
        metrics.MCP_RELOADS.labels(server=name, outcome=outcome).inc()
        self._health[name] = dataclasses.replace(
            self._health[name], last_reload=outcome, last_reload_reason=reason
        )
        return ReloadResult(server=name, outcome=outcome, health=self._health[name], reason=reason)

    def _bind(self, server: ToolServer) -> None:
        """Give a balanced server's endpoints their breakers from the resilience registry."""
        pipeline = self._pipelines.get(server.name)
        if isinstance(server, BalancedToolServer) and self._resilience and pipeline:
            server.bind(self._resilience, pipeline)

    def servers(self) -> dict[str, ToolServer]:
        """The tool servers, by name."""
        return dict(self._servers)

    def server_tools(self, name: str) -> list[ToolSpec]:
        """The tools server ``name`` listed (by their own names, withheld pinned tools
        included; empty until it started)."""
        return list(self._server_tools.get(name, []))

    async def _start(self, servers: list[ToolServer]) -> None:
        async with asyncio.TaskGroup() as group:
            for server in servers:
                group.create_task(self._start_one(server), name=f"start tool server {server.name}")
        self._rebuild()

    def _start_timeout(self, server: ToolServer) -> float:
        config = _config_of(server)
        if config is not None:
            timeouts = config.timeouts
            return timeouts.connect_seconds + timeouts.discovery_seconds + CLOSE_TIMEOUT_SECONDS
        return self._default_start_timeout

    async def _check(self, server: ToolServer) -> tuple[list[ToolSpec], list[ToolMismatch]]:
        """Connect (negotiating a protocol version), list the tools and check the pins,
        bounded; :class:`_CheckFailedError` with the reason when it cannot."""
        bound = self._start_timeout(server)
        try:
            async with asyncio.timeout(bound):
                await server.start()
                if isinstance(server, MCPToolServer | BalancedToolServer):
                    specs = await server.list_tools(refresh=True)
                else:
                    specs = await server.list_tools()
        except DependencyError as exc:
            raise _CheckFailedError(exc.detail) from exc
        except TimeoutError:
            raise _CheckFailedError(f"did not start within {bound:g}s") from None
        except Exception as exc:  # a failing tool server must not stop the agent
            log.exception("tool server %s failed to start", server.name)
            raise _CheckFailedError(f"{type(exc).__name__}: {exc}") from exc
        config = _config_of(server)
        return specs, check_pins(specs, config.pinned_tools if config is not None else None)

    async def _start_one(self, server: ToolServer) -> None:
        try:
            specs, mismatches = await self._check(server)
        except _CheckFailedError as failed:
            self._mark(server.name, "unavailable", failed.reason)
            log.warning(
                "tool server %s is unavailable: %s",
                server.name,
                failed.reason,
                extra={"tool_server": server.name},
            )
            return
        self._accept(server, specs, mismatches)

    def _accept(
        self, server: ToolServer, specs: list[ToolSpec], mismatches: list[ToolMismatch]
    ) -> None:
        """Make ``server`` (which passed its checks) the one serving its name."""
        name = server.name
        self._server_tools[name] = specs
        self._listed_at[name] = time.monotonic()
        identity = _identity_of(server)
        self._mark(name, "available", None, tools=len(specs) - len(mismatches))
        self._health[name] = dataclasses.replace(
            self._health[name],
            protocol_version=identity.protocol_version if identity else None,
            server_name=identity.server_name if identity else None,
            server_version=identity.server_version if identity else None,
            incompatible_tools=tuple(mismatches),
        )
        for mismatch in mismatches:
            log.warning(
                "tool server %s: %s; the tool is withheld from the model",
                name,
                mismatch.reason,
                extra={
                    "tool_server": name,
                    "tool": mismatch.tool,
                    "expected_hash": mismatch.expected,
                    "actual_hash": mismatch.actual,
                },
            )
        self._publish(name)

    def _publish(self, name: str, *, gone: bool = False) -> None:
        """Update this registry's share of the info and schema-mismatch gauges."""
        health = self._health[name]
        labels = (
            None
            if gone or health.protocol_version is None
            else (name, health.protocol_version, health.server_version or "")
        )
        previous = self._info_labels.pop(name, None)
        if previous != labels:
            if previous is not None:
                metrics.MCP_SERVER_INFO.labels(*previous).dec()
            if labels is not None:
                metrics.MCP_SERVER_INFO.labels(*labels).inc()
        if labels is not None:
            self._info_labels[name] = labels
        flagged = frozenset() if gone else frozenset(m.tool for m in health.incompatible_tools)
        before = self._flagged.get(name, frozenset())
        for tool in before - flagged:
            metrics.MCP_TOOL_SCHEMA_MISMATCH.labels(server=name, tool=tool).dec()
        for tool in flagged - before:
            metrics.MCP_TOOL_SCHEMA_MISMATCH.labels(server=name, tool=tool).inc()
        self._flagged[name] = flagged

    def _retire(self, old: ToolServer) -> None:
        """Close a replaced server once its calls in flight have finished (bounded)."""
        config = _config_of(old)
        bound = self._drain_seconds
        if bound is None:
            bound = config.timeouts.call_seconds if config is not None else 30.0
        self._replaced.add(old)

        async def drain() -> None:
            tracker = self._in_flight.get(old)
            if tracker is not None and tracker.count:
                log.info(
                    "tool server %s: draining %d call(s) on the replaced connection",
                    old.name,
                    tracker.count,
                    extra={"tool_server": old.name},
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(bound):
                        await tracker.idle.wait()
            await self._close(old)
            self._replaced.discard(old)
            self._in_flight.pop(old, None)

        task = asyncio.get_running_loop().create_task(drain(), name=f"retire {old.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def drained(self) -> None:
        """Wait until every replaced connection has been closed."""
        while self._retiring:
            await asyncio.wait(set(self._retiring))

    def _mark(
        self, name: str, status: ServerStatus, reason: str | None, *, tools: int | None = None
    ) -> None:
        previous = self._health[name]
        count = previous.tools if tools is None else tools
        since = previous.since if previous.status == status else time.time()
        self._health[name] = dataclasses.replace(
            previous, status=status, tools=count, reason=reason, since=since
        )

    async def aclose(self) -> None:
        """Close every server (replaced ones still draining too), concurrently; bounded,
        and never raises."""
        if self._relisting is not None:
            self._relisting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisting

        async def close(server: ToolServer) -> None:
            await self._close(server)
            self._mark(server.name, "closed", None)
            self._publish(server.name, gone=True)

        for old in self._replaced:  # stop draining: close them now
            self._in_flight.setdefault(old, _InFlight()).idle.set()
        async with asyncio.TaskGroup() as group:
            for server in self._servers.values():
                group.create_task(close(server))
        if self._retiring:
            await asyncio.wait(set(self._retiring), timeout=2 * CLOSE_TIMEOUT_SECONDS + 1)

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
        withheld: dict[str, tuple[str, str]] = {}
        incompatible = {
            name: {m.tool: m for m in health.incompatible_tools}
            for name, health in self._health.items()
            if health.incompatible_tools
        }
        for server_name, spec in listed:
            exposed = _model_safe(spec.name)
            if counts[exposed] > 1:
                exposed = _model_safe(f"{server_name}{PREFIX_SEPARATOR}{spec.name}")
            mismatch = incompatible.get(server_name, {}).get(spec.name)
            if mismatch is not None:
                withheld[exposed] = (server_name, mismatch.reason)
                continue
            if exposed in routes:
                log.warning(
                    "tool %s of server %s is hidden: its name clashes with another tool's",
                    spec.name,
                    server_name,
                    extra={"tool_server": server_name},
                )
                continue
            server = self._servers[server_name]
            idempotent = (
                isinstance(server, MCPToolServer | BalancedToolServer)
                and spec.name in server.idempotent_tools
            )
            routes[exposed] = _Route(server=server, tool=spec.name, idempotent=idempotent)
            specs.append(ToolSpec(exposed, spec.description, spec.input_schema))
        for server_name, by_tool in incompatible.items():  # pinned tools no longer listed
            for tool, mismatch in by_tool.items():
                if mismatch.actual is None:
                    withheld.setdefault(_model_safe(tool), (server_name, mismatch.reason))
        self._specs, self._routes, self._withheld = specs, routes, withheld

    def tools(self) -> list[ToolSpec]:
        """The tools offered to the model, with unique names (without the tools of a
        server whose circuit breaker refuses calls right now)."""
        if self._tool_list_ttl and self._relisting is None:
            self._relist_if_stale()
        pipelines = self._pipelines
        if pipelines and any(p.refusing for p in pipelines.values()):
            refusing = {name for name, p in pipelines.items() if p.refusing}
            return [
                spec for spec in self._specs if self._routes[spec.name].server.name not in refusing
            ]
        return list(self._specs)

    def _relist_if_stale(self) -> None:
        """List again, in the background, the tools of available servers whose list is
        older than the TTL (the caller gets the cached list now, the next one the new)."""
        horizon = time.monotonic() - self._tool_list_ttl
        stale = [
            server
            for name, server in self._servers.items()
            if self._health[name].status == "available"
            and self._listed_at.get(name, horizon) < horizon
        ]
        if not stale:
            return

        async def relist() -> None:
            try:
                for server in stale:
                    await self._start_one(server)
                self._rebuild()
            finally:
                self._relisting = None

        self._relisting = asyncio.get_running_loop().create_task(relist(), name="relist tools")

    def health(self) -> dict[str, ServerHealth]:
        """Per-server status, keyed by server name."""
        return dict(self._health)

    def check_failures(self) -> dict[str, str]:
        """Why each server that fails the health checks of a new agent version fails
        them: it is not available, or it withholds pinned tools. Empty: all passed."""
        failures: dict[str, str] = {}
        for name, health in self._health.items():
            if health.status != "available":
                failures[name] = health.reason or health.status
            elif health.incompatible_tools:
                failures[name] = "; ".join(m.reason for m in health.incompatible_tools)
        return failures

    @property
    def degraded(self) -> bool:
        """Whether some server is unavailable."""
        return any(h.status == "unavailable" for h in self._health.values())

    # -- calls ----------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run a tool. Failures come back as ``is_error`` results, never as exceptions."""
        route = self._routes.get(name)
        if route is None:
            withheld = self._withheld.get(name)
            if withheld is not None:
                return self._unavailable(name, *withheld)
            offered = ", ".join(sorted(self._routes)) or "none"
            return ToolResult(
                content=f"Unknown tool {name!r}. The tools available are: {offered}.",
                is_error=True,
            )
        server = route.server
        # Counted per server object: a server replaced by a reload is closed once idle.
        tracker = self._in_flight.setdefault(server, _InFlight())
        tracker.enter()
        try:
            return await self._call(route, name, arguments)
        finally:
            tracker.leave()

    async def _call(self, route: _Route, name: str, arguments: dict[str, Any]) -> ToolResult:
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
            if self._servers.get(server.name) is server:  # not a replaced connection
                status = "unavailable" if down else self._health[server.name].status
                self._mark(server.name, status, exc.detail)
            return self._unavailable(name, server.name, exc.detail)
        except Exception as exc:  # a broken adapter must not break the turn
            log.exception("tool %s on server %s raised", name, server.name)
            reason = f"{type(exc).__name__}: {exc}"
            if self._servers.get(server.name) is server:  # not a replaced connection
                self._mark(server.name, "unavailable", reason)
            return self._unavailable(name, server.name, reason)
        if self._servers.get(server.name) is server and (
            self._health[server.name].status != "available"
        ):
            self._mark(server.name, "available", None)
            log.info("tool server %s is available again", server.name)
        return result

    @staticmethod
    async def _call_guarded(
        pipeline: Pipeline, route: _Route, arguments: dict[str, Any]
    ) -> ToolResult:
        server = route.server
        if isinstance(server, MCPToolServer | BalancedToolServer):
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
