"""Graceful shutdown, in order: readiness false → (drain delay, so the load balancer stops
routing here) → WebSocket clients told to reconnect elsewhere (close 1012) → no new
messages accepted → running turns finish within the grace period or are handed over to
another replica (lease released, claim kept) → the server stops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentfleet.protocol import CloseCode
from agentfleet_runtime.realtime.hub import ConnectionHub
from agentfleet_runtime.state.dispatcher import TurnDispatcher

log = logging.getLogger(__name__)


class Drainer:
    def __init__(
        self,
        app_state: Any,
        hub: ConnectionHub,
        dispatcher: TurnDispatcher,
        *,
        delay_seconds: float,
        grace_seconds: float,
    ) -> None:
        self._state = app_state
        self._hub = hub
        self._dispatcher = dispatcher
        self._delay = delay_seconds
        self._grace = grace_seconds
        self._done: asyncio.Task[None] | None = None

    def drain(self) -> asyncio.Task[None]:
        """Start draining (idempotent); the task ends when it is safe to stop serving."""
        if self._done is None:
            self._done = asyncio.create_task(self._drain(), name="drain")
        return self._done

    async def _drain(self) -> None:
        self._state.shutting_down = True
        log.info("draining: readiness is false", extra={"delay": self._delay})
        if self._delay:
            await asyncio.sleep(self._delay)
        await self._hub.close_all(CloseCode.SERVICE_RESTART, "server shutting down: reconnect")
        running = self._dispatcher.running_turns()
        await self._dispatcher.drain(self._grace)
        log.info("drained", extra={"turns_running_at_start": running})
