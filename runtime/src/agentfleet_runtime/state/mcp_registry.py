"""MCP servers registered through the API (``POST /api/v1/mcp-servers``), kept in the
state backend so that every replica knows them — and keeps knowing them after a restart.

The registry holds each registration's resolved spec and owning tenant;
:class:`MCPServerSync` keeps a replica's
:class:`~agentfleet_runtime.tools.catalog.MCPServerCatalog` in step with it: loaded at
start-up, changed by this replica's register/unregister, and re-read whenever another
replica says it changed something (control message ``mcp.changed``) and every
``resync_seconds`` (a missed control message only delays a change). A server that goes
away closes the connections of the (stale) agents still holding one on this replica.

Redis layout (``<p>`` = ``<prefix>:<namespace>``):

=======================  =====  ===========================================================
``<p>:mcp-servers``      HASH   server name → registration JSON (``HSETNX``: one name,
                                one owner, whichever replica asks first)
=======================  =====  ===========================================================

The resolved spec may hold credentials (a password in the URL, literal ``env`` values):
the registry is as sensitive as the rest of the state store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_runtime.errors import ConflictError, NotFoundError
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.redis_client import Keys, text, translate_errors
from agentfleet_runtime.tools.catalog import MCPServerCatalog, MCPServerEntry, MCPServerSource

log = logging.getLogger(__name__)

#: The control message that makes every replica re-read the registry.
CHANGED_MESSAGE = "mcp.changed"
#: The discovery source's name in ``agentfleet_discovery_source_up``.
REGISTRY_SOURCE = "mcp-registry"


class MCPRegistration(BaseModel):
    config: ResolvedMCPServer
    tenant: str
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def name(self) -> str:
        return self.config.name


class MCPServerRegistry(Protocol):
    async def add(self, registration: MCPRegistration) -> bool:
        """Register unless the name is taken; True if registered."""
        ...

    async def remove(self, name: str) -> bool: ...

    async def replace(self, registration: MCPRegistration) -> bool:
        """Change a registration in place; False if there is none of that name."""
        ...

    async def list(self) -> list[MCPRegistration]: ...


class MemoryMCPServerRegistry:
    def __init__(self) -> None:
        self._items: dict[str, MCPRegistration] = {}

    async def add(self, registration: MCPRegistration) -> bool:
        if registration.name in self._items:
            return False
        self._items[registration.name] = registration
        return True

    async def remove(self, name: str) -> bool:
        return self._items.pop(name, None) is not None

    async def replace(self, registration: MCPRegistration) -> bool:
        if registration.name not in self._items:
            return False
        self._items[registration.name] = registration
        return True

    async def list(self) -> list[MCPRegistration]:
        return list(self._items.values())


class RedisMCPServerRegistry:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = f"{keys.base}:mcp-servers"

    @translate_errors
    async def add(self, registration: MCPRegistration) -> bool:
        added = await self._r.hsetnx(self._key, registration.name, registration.model_dump_json())
        return bool(added)

    @translate_errors
    async def remove(self, name: str) -> bool:
        return bool(await self._r.hdel(self._key, name))

    @translate_errors
    async def replace(self, registration: MCPRegistration) -> bool:
        if not await self._r.hexists(self._key, registration.name):
            return False
        await self._r.hset(self._key, registration.name, registration.model_dump_json())
        return True

    @translate_errors
    async def list(self) -> list[MCPRegistration]:
        raw: dict[Any, Any] = await self._r.hgetall(self._key)
        return [MCPRegistration.model_validate_json(text(v)) for v in raw.values()]


class MCPServerSync:
    """Keeps a replica's catalog in step with the shared registry (see the module doc).
    ``closed``: called with the names of servers that went away, to close the
    connections still open to them here."""

    def __init__(
        self,
        registry: MCPServerRegistry,
        catalog: MCPServerCatalog,
        *,
        replica: str,
        broadcast: Callable[[dict[str, Any]], Awaitable[None]],
        closed: Callable[[set[str]], Awaitable[None]] | None = None,
        changed: Callable[[set[str]], Awaitable[None]] | None = None,
        resync_seconds: float = 30.0,
    ) -> None:
        """``changed``: called with the names of servers registered or changed elsewhere
        (agents here using a changed one switch their connections over)."""
        self._registry = registry
        self._catalog = catalog
        self._replica = replica
        self._broadcast = broadcast
        self._closed = closed
        self._changed_here = changed
        self._resync = resync_seconds
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Make the catalog's API-registered servers those of the registry."""
        async with self._lock:
            registrations = await self._registry.list()
            added, removed = self._catalog.sync_registered(
                [
                    MCPServerEntry(
                        config=r.config,
                        source=MCPServerSource.API,
                        tenant=r.tenant,
                        created_at=r.created_at,
                    )
                    for r in registrations
                ]
            )
        if added or removed:
            log.info(
                "MCP servers registered elsewhere applied",
                extra={"added": sorted(added), "removed": sorted(removed)},
            )
        if removed and self._closed is not None:
            await self._closed(removed)
        if added and self._changed_here is not None:
            await self._changed_here(added)

    async def register(self, config: ResolvedMCPServer, *, tenant: str) -> MCPServerEntry:
        """Register ``config`` for ``tenant`` on every replica (409 if the name is taken,
        here or in the registry)."""
        if config.name in self._catalog:
            raise _taken(config.name)
        registration = MCPRegistration(config=config, tenant=tenant)
        if not await self._registry.add(registration):
            await self.load()  # another replica was first: learn about it now
            raise _taken(config.name)
        entry = self._catalog.register(config, tenant=tenant, created_at=registration.created_at)
        await self._changed()
        return entry

    async def replace(self, config: ResolvedMCPServer, *, tenant: str) -> MCPServerEntry:
        """Change a registered server's definition on every replica (this one has already
        switched its agents over)."""
        current = self._catalog.entry(config.name)
        created = current.created_at if current is not None else None
        registration = MCPRegistration(config=config, tenant=tenant)
        if created is not None:
            registration.created_at = created
        if not await self._registry.replace(registration):
            raise NotFoundError(
                f"MCP server {config.name!r} does not exist", mcp_server=config.name
            )
        self._catalog.unregister(config.name)
        entry = self._catalog.register(config, tenant=tenant, created_at=registration.created_at)
        await self._changed()
        return entry

    async def unregister(self, name: str) -> None:
        await self._registry.remove(name)
        self._catalog.unregister(name)
        await self._changed()
        if self._closed is not None:
            await self._closed({name})

    def on_control(self, message: dict[str, Any]) -> None:
        """The control-message handler: re-read the registry when another replica
        changed it."""
        if message.get("type") != CHANGED_MESSAGE or message.get("origin") == self._replica:
            return
        self._spawn(self.try_load())

    def start(self) -> None:
        """Re-read the registry every ``resync_seconds`` (control messages may be lost)."""
        self._loop_task = asyncio.get_running_loop().create_task(self._resync_loop())

    async def aclose(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _changed(self) -> None:
        try:
            await self._broadcast({"type": CHANGED_MESSAGE, "origin": self._replica})
        except Exception:  # the others catch up at their next resync
            log.warning("could not tell the other replicas about an MCP server change")

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync)
            await self.try_load()

    async def try_load(self) -> None:
        """:meth:`load`, logging a failure (the next resync tries again)."""
        try:
            await self.load()
        except Exception:
            log.warning(
                "could not re-read the MCP server registry; serving the last known servers",
                exc_info=True,
                extra={"source": REGISTRY_SOURCE},
            )
            metrics.DISCOVERY_SOURCE_UP.labels(REGISTRY_SOURCE).set(0)
            return
        metrics.DISCOVERY_SOURCE_UP.labels(REGISTRY_SOURCE).set(1)
        metrics.DISCOVERY_LAST_SUCCESS.labels(REGISTRY_SOURCE).set(time.time())

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _taken(name: str) -> ConflictError:
    return ConflictError(f"an MCP server named {name!r} already exists", mcp_server=name)
