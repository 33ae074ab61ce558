"""Session events in degraded mode: while a session is local, appends continue from its
last known id in memory (local followers get them at once) and reach Redis, in order, by
the resync. When someone else appended meanwhile, Redis numbers them on after its own
(``renumbered``) and followers are told to re-read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.state.degraded.mode import DegradedMode, Missing
from agentfleet_runtime.state.fanout import Fanout, follow
from agentfleet_runtime.state.memory import SessionEvents

if TYPE_CHECKING:
    from agentfleet_runtime.state.redis_events import RedisEventLog

__all__ = ["FallbackEventLog"]

log = logging.getLogger(__name__)


class _LocalEvents(SessionEvents):
    """A local session's events kept here, numbered on from ``base``."""

    def __init__(self, base: int) -> None:
        super().__init__(last_id=base)
        #: The last id Redis had (as far as this replica knows) when the session went local.
        self.base = base


class FallbackEventLog:
    """The Redis event log, with the events of the sessions kept in memory."""

    def __init__(self, inner: RedisEventLog, mode: DegradedMode, fanout: Fanout) -> None:
        self._inner = inner
        self._mode = mode
        self._fanout = fanout
        self._local: dict[str, _LocalEvents] = {}
        mode.on_forget(self._forget)

    def _forget(self, session_id: str) -> None:
        self._local.pop(session_id, None)

    async def append(
        self,
        session_id: str,
        turn_id: str,
        type_: str,
        data: dict[str, Any],
        *,
        seq: int | None = None,
        fence: str | None = None,
    ) -> TurnEvent:
        mode = self._mode
        stored = await mode.unless_local(
            session_id,
            "events.append",
            lambda: self._inner.append(session_id, turn_id, type_, data, seq=seq, fence=fence),
        )
        if not isinstance(stored, Missing):
            mode.last_ids.put(session_id, stored["id"])
            return stored
        local = self._local.get(session_id)
        if local is None:
            last = mode.last_ids.get(session_id)
            if not isinstance(last, int):
                raise mode.refuse("events.append", session_id)
            local = self._local[session_id] = _LocalEvents(last)
        retried = local.retried(turn_id, seq)
        if retried is not None:
            return retried
        event = local.add(session_id, turn_id, type_, data, seq)
        mode.last_ids.put(session_id, event["id"])

        def replay() -> Awaitable[TurnEvent]:
            return self._inner.append(session_id, turn_id, type_, data, seq=seq, ts=event["ts"])

        def done(written: TurnEvent) -> str:
            if written["id"] == event["id"]:
                return "written"
            log.warning(
                "state resync: session %s event %d became %d (written elsewhere meanwhile)",
                session_id,
                event["id"],
                written["id"],
                extra={"session": session_id},
            )
            mode.last_ids.put(session_id, written["id"])
            self._fanout.resync(session_id)
            return "renumbered"

        mode.keep(session_id, "events.append", replay, done)
        self._fanout.publish(event)
        return event

    async def read(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[TurnEvent]:
        local = self._local.get(session_id)
        if local is None:
            mode = self._mode
            try:
                return await mode.remote(
                    lambda: self._inner.read(session_id, after=after, limit=limit)
                )
            except Exception as exc:
                mode.fall_back(exc, "events.read", session_id)
                last = mode.last_ids.get(session_id)
                if isinstance(last, int) and after >= last:
                    return []  # nothing after what this replica last saw
                raise mode.refuse("events.read", session_id) from exc
        events = [e for e in local.events if e["id"] > after]
        if after < local.base:  # older events are in Redis only
            remote = await self._mode.guarded(
                lambda: self._inner.read(session_id, after=after, limit=limit),
                "events.read",
                session_id,
            )
            events = [e for e in remote if e["id"] <= local.base] + events
        return events[:limit] if limit is not None else events

    async def last_id(self, session_id: str) -> int:
        local = self._local.get(session_id)
        if local is not None:
            return local.last_id
        mode = self._mode
        try:
            last = await mode.remote(lambda: self._inner.last_id(session_id))
        except Exception as exc:
            mode.fall_back(exc, "events.last_id", session_id)
            cached = mode.last_ids.get(session_id)
            if isinstance(cached, int):
                return cached
            raise mode.refuse("events.last_id", session_id) from exc
        mode.last_ids.put(session_id, last)
        return last

    async def _read_page(self, session_id: str, after: int, limit: int) -> list[TurnEvent]:
        return await self.read(session_id, after=after, limit=limit)

    def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        return follow(self._fanout, self._read_page, session_id, after=after)

    async def delete(self, session_id: str) -> None:
        if session_id in self._mode.local:
            raise self._mode.refuse("events.delete", session_id)
        await self._mode.guarded(lambda: self._inner.delete(session_id), "events.delete")
        self._mode.last_ids.pop(session_id)
