"""The MCP servers the runtime knows, and what the API shows of them.

:class:`MCPServerCatalog` holds every server agents may reference: those from the runtime
config / manifests (``config``: shared by every tenant, read-only) and those registered
through ``POST /api/v1/mcp-servers`` (``api``: belong to the tenant that registered them;
kept in the state backend's registry and mirrored here by
:class:`~agentfleet_runtime.state.mcp_registry.MCPServerSync`, so every replica has them).
It is the mapping agent tool references are resolved against.

The connection state of a server is that of the agents using it on this replica: each
loaded agent has its own :class:`~agentfleet_runtime.tools.registry.ToolRegistry` with its
own connection. :func:`server_state` sums them up; :func:`server_tools` lists the tools
(from a connected agent's listing, else over a short-lived connection of its own).

What is shown never holds a secret: URL passwords and credential-like query parameters
and command arguments are masked (:func:`redact_url`, :func:`redact_args`); environment
variables and headers are shown by name only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_runtime.errors import ConflictError
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.secrets.redaction import MASK, REDACTOR, is_sensitive_key
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.tools.mcp.client import MCPToolServer, ServerIdentity
from agentfleet_runtime.tools.registry import ReloadResult, ToolMismatch, ToolRegistry

ConnectionState = Literal["connected", "unavailable", "pending", "idle"]


class MCPServerSource(StrEnum):
    #: From the runtime config or manifests: shared by every tenant, read-only.
    CONFIG = "config"
    #: Registered through the API by a tenant.
    API = "api"


@dataclass(frozen=True, slots=True)
class MCPServerEntry:
    config: ResolvedMCPServer
    source: MCPServerSource
    #: The tenant an API-registered server belongs to; ``None``: shared.
    tenant: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def name(self) -> str:
        return self.config.name

    def visible_to(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant


class MCPServerCatalog(Mapping[str, ResolvedMCPServer]):
    """Every MCP server agents may reference, by name (a read-only mapping of configs;
    changed through :meth:`update`, :meth:`register` and :meth:`unregister`)."""

    def __init__(self) -> None:
        self._entries: dict[str, MCPServerEntry] = {}

    def __getitem__(self, name: str) -> ResolvedMCPServer:
        return self._entries[name].config

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, servers: Mapping[str, ResolvedMCPServer]) -> None:
        """Add (or replace) shared servers from the runtime config."""
        for name, config in servers.items():
            self._entries[name] = MCPServerEntry(config=config, source=MCPServerSource.CONFIG)

    def sync_config(self, servers: Mapping[str, ResolvedMCPServer]) -> None:
        """Make the shared servers from the runtime config exactly ``servers`` (a config
        reload: servers that left the config are forgotten)."""
        for name, known in list(self._entries.items()):
            if known.source is MCPServerSource.CONFIG and name not in servers:
                del self._entries[name]
        self.update(servers)

    def entry(self, name: str, *, tenant: str | None = None) -> MCPServerEntry | None:
        """``tenant``: only if that tenant may see it."""
        found = self._entries.get(name)
        if found is None or (tenant is not None and not found.visible_to(tenant)):
            return None
        return found

    def entries(self, *, tenant: str | None = None) -> list[MCPServerEntry]:
        return [e for e in self._entries.values() if tenant is None or e.visible_to(tenant)]

    def visible(self, tenant: str) -> dict[str, ResolvedMCPServer]:
        """The servers ``tenant``'s agents may reference."""
        return {e.name: e.config for e in self._entries.values() if e.visible_to(tenant)}

    def register(
        self, config: ResolvedMCPServer, *, tenant: str, created_at: datetime | None = None
    ) -> MCPServerEntry:
        if config.name in self._entries:
            raise ConflictError(
                f"an MCP server named {config.name!r} already exists", mcp_server=config.name
            )
        entry = MCPServerEntry(
            config=config,
            source=MCPServerSource.API,
            tenant=tenant,
            created_at=created_at or utcnow(),
        )
        self._entries[config.name] = entry
        return entry

    def sync_registered(self, entries: list[MCPServerEntry]) -> tuple[set[str], set[str]]:
        """Make the API-registered servers exactly ``entries`` (a name taken by a config
        server stays the config server's); the names added (or changed) and removed."""
        wanted = {e.name: e for e in entries}
        added: set[str] = set()
        removed: set[str] = set()
        for name, known in list(self._entries.items()):
            if known.source is MCPServerSource.API and name not in wanted:
                del self._entries[name]
                removed.add(name)
        for name, entry in wanted.items():
            current = self._entries.get(name)
            if current is not None and current.source is MCPServerSource.CONFIG:
                continue
            if current != entry:
                self._entries[name] = entry
                added.add(name)
        return added, removed

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)


# -- state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerState:
    """A server as the agents of this replica see it."""

    state: ConnectionState
    #: Why it is unavailable (the last failure), if it is.
    reason: str | None = None
    tools: int | None = None
    protocol_version: str | None = None
    #: The ``serverInfo`` it sent (optional from the 2026 protocol on).
    server_name: str | None = None
    server_version: str | None = None
    #: Loaded agents on this replica that hold a connection to it.
    connected_agents: tuple[str, ...] = ()
    #: Pinned tools withheld, by agent (pins are per agent).
    incompatible_tools: dict[str, tuple[ToolMismatch, ...]] = field(default_factory=dict)


def users(name: str, registries: Mapping[str, ToolRegistry]) -> dict[str, ToolRegistry]:
    """The registries (by agent) that include server ``name``."""
    return {agent: r for agent, r in registries.items() if name in r.health()}


def server_state(name: str, registries: Mapping[str, ToolRegistry]) -> ServerState:
    """Connected if some agent has it available; unavailable if every agent that uses it
    failed; idle if no loaded agent uses it."""
    using = users(name, registries)
    if not using:
        return ServerState(state="idle")
    healths = {agent: r.health()[name] for agent, r in using.items()}
    available = [agent for agent, h in healths.items() if h.status == "available"]
    if available:
        first = healths[available[0]]
        return ServerState(
            state="connected",
            # Agents may be allowed a subset of its tools: the widest listing counts.
            tools=max(len(using[agent].server_tools(name)) for agent in available),
            protocol_version=first.protocol_version,
            server_name=first.server_name,
            server_version=first.server_version,
            connected_agents=tuple(sorted(available)),
            incompatible_tools={
                agent: h.incompatible_tools for agent, h in healths.items() if h.incompatible_tools
            },
        )
    if any(h.status == "pending" for h in healths.values()):
        return ServerState(state="pending")
    reasons = [h.reason for h in healths.values() if h.reason]
    return ServerState(state="unavailable", reason=reasons[0] if reasons else None)


async def server_tools(
    config: ResolvedMCPServer, registries: Mapping[str, ToolRegistry]
) -> list[ToolSpec]:
    """The server's tools: as a connected agent allowed every tool listed them, else
    listed over a connection of their own (bounded by the server's timeouts; raises the
    translated dependency error when the server cannot be reached)."""
    for registry in users(config.name, registries).values():
        server = registry.servers()[config.name]
        unfiltered = isinstance(server, MCPToolServer) and server.config.allowed_tools is None
        if unfiltered and registry.health()[config.name].status == "available":
            return registry.server_tools(config.name)
    async with MCPToolServer(config.model_copy(update={"allowed_tools": None})) as server:
        return await server.list_tools()


async def reload_server(
    name: str,
    registries: Mapping[str, ToolRegistry],
    config: ResolvedMCPServer | None = None,
) -> dict[str, ReloadResult]:
    """Hot reload of server ``name`` in every registry that has it, each with a
    health-checked switch-over (:meth:`ToolRegistry.reload`); ``config``: its new
    definition (``None``: reconnect to the same one). What happened, by agent."""
    using = users(name, registries)
    results = await asyncio.gather(*(registry.reload(name, config) for registry in using.values()))
    return dict(zip(using, results, strict=True))


async def probe_server(config: ResolvedMCPServer) -> tuple[ServerIdentity | None, list[ToolSpec]]:
    """Connect to a server definition over a connection of its own, negotiate, list its
    tools (every tool: no allow-list) and close; bounded by its timeouts. Raises the
    translated dependency error when it cannot."""
    async with MCPToolServer(config.model_copy(update={"allowed_tools": None})) as server:
        tools = await server.list_tools()
        return server.identity, tools


# -- redaction ----------------------------------------------------------------------------


def redact_url(url: str | None) -> str | None:
    """``url`` without a password and with credential-like query values masked."""
    if url is None:
        return None
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:{MASK}@{host}"
    query = urlencode(
        [
            (k, MASK if is_sensitive_key(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="[]",
    )
    return REDACTOR.redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_args(args: list[str]) -> list[str]:
    """Command arguments with credential-like values masked: ``--token=x``, the value
    after ``--api-key``, and anything token-shaped or known to the secret manager."""
    shown: list[str] = []
    mask_next = False
    for arg in args:
        flag, equals, value = arg.partition("=")
        key = flag.lstrip("-")
        if mask_next:
            shown.append(MASK)
            mask_next = False
        elif arg.startswith("-") and equals and is_sensitive_key(key) and value:
            shown.append(f"{flag}={MASK}")
        else:
            shown.append(REDACTOR.redact(arg))
            mask_next = arg.startswith("-") and not equals and is_sensitive_key(key)
    return shown
