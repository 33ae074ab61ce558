"""All WebSocket connections of this process: one heartbeat task for all of them (not one
per connection: 10,000 idle connections cost 10,000 sockets, not 10,000 timers), and the
close-everything step of a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from agentfleet.protocol import CloseCode
from agentfleet_runtime.realtime.settings import RealtimeSettings

if TYPE_CHECKING:
    from agentfleet_runtime.realtime.connection import Connection


class ConnectionHub:
    def __init__(self, settings: RealtimeSettings) -> None:
        self.settings = settings
        self._connections: set[Connection] = set()
        #: open connections per tenant (the ``max_websockets`` quota, per replica)
        self._tenants: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.accepting = True

    def __len__(self) -> int:
        return len(self._connections)

    def count(self, tenant: str) -> int:
        """Open connections of ``tenant``."""
        return self._tenants.get(tenant, 0)

    def add(self, connection: Connection) -> None:
        if connection not in self._connections:
            self._connections.add(connection)
            tenant = connection.tenant
            self._tenants[tenant] = self._tenants.get(tenant, 0) + 1

    def discard(self, connection: Connection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            tenant = connection.tenant
            left = self._tenants.get(tenant, 1) - 1
            if left > 0:
                self._tenants[tenant] = left
            else:
                self._tenants.pop(tenant, None)

    def track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ws heartbeat")

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval_seconds
        dead_after = interval + self.settings.heartbeat_timeout_seconds
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            ping = {"type": "ping", "ts": time.time()}
            for connection in list(self._connections):
                if now - connection.last_seen > dead_after:
                    connection.close_soon(CloseCode.TIMEOUT, "no heartbeat from the client")
                else:
                    connection.send_control(ping)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every connection (graceful shutdown: 1012, reconnect elsewhere)."""
        self.accepting = False
        for connection in list(self._connections):
            connection.close_soon(code, reason)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=3)

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
