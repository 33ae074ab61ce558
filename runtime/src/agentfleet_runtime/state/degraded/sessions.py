"""Session records in degraded mode: a local session's records live in an in-memory
overlay (and the journal) until the resync has written them to Redis; other sessions'
records are read from Redis and remembered (the last one seen) in the mode's cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentfleet_runtime.state.base import SessionRecord
from agentfleet_runtime.state.degraded.mode import DegradedMode, Missing

if TYPE_CHECKING:
    from agentfleet_runtime.state.redis_stores import RedisSessionStore

__all__ = ["FallbackSessionStore"]


class FallbackSessionStore:
    """The Redis session store, with an overlay for the sessions kept in memory."""

    def __init__(self, inner: RedisSessionStore, mode: DegradedMode) -> None:
        self._inner = inner
        self._mode = mode
        self._overlay: dict[str, SessionRecord] = {}
        mode.on_forget(self._forget)

    def _forget(self, session_id: str) -> None:
        self._overlay.pop(session_id, None)

    def _keep(self, record: SessionRecord, operation: str) -> None:
        stored = record.model_copy(deep=True)
        self._overlay[record.id] = stored
        self._mode.records.put(record.id, stored)
        snapshot = stored.model_copy()
        self._mode.keep(record.id, operation, lambda: self._inner.put(snapshot))

    def _seen(self, session_id: str, record: SessionRecord | None) -> None:
        """Remember what Redis answered (``None``: the session is gone)."""
        if record is None:
            self._mode.records.pop(session_id)
        else:
            self._mode.records.put(session_id, record)

    async def put(self, record: SessionRecord) -> None:
        mode = self._mode
        written = await mode.unless_local(
            record.id, "sessions.put", lambda: self._inner.put(record)
        )
        if not isinstance(written, Missing):
            mode.records.put(record.id, record)
            return
        if record.id not in mode.last_ids:  # created here while degraded: nothing yet
            mode.last_ids.put(record.id, 0)
            mode.checkpoints.put(record.id, None)
        self._keep(record, "sessions.put")

    async def get(self, session_id: str) -> SessionRecord | None:
        local = self._overlay.get(session_id)
        if local is not None:
            return local.model_copy(deep=True)
        mode = self._mode
        try:
            record = await mode.remote(lambda: self._inner.get(session_id))
        except Exception as exc:
            mode.fall_back(exc, "sessions.get", session_id)
            cached = mode.records.get(session_id)
            if isinstance(cached, SessionRecord):
                return cached.model_copy(deep=True)
            raise mode.refuse("sessions.get", session_id) from exc
        self._seen(session_id, record)
        return record

    async def list(
        self, *, agent: str | None = None, tenant: str | None = None
    ) -> list[SessionRecord]:
        records = await self._mode.guarded(
            lambda: self._inner.list(agent=agent, tenant=tenant), "sessions.list"
        )
        if not self._overlay:
            return records
        local = {
            sid: r
            for sid, r in self._overlay.items()
            if (agent is None or r.agent == agent) and (tenant is None or r.tenant == tenant)
        }
        merged = [local.pop(r.id, r) for r in records]
        merged.extend(local.values())  # created while degraded, not in Redis yet
        return [r.model_copy(deep=True) for r in merged]

    async def delete(self, session_id: str) -> bool:
        if session_id in self._mode.local:
            raise self._mode.refuse("sessions.delete", session_id)
        deleted = await self._mode.guarded(
            lambda: self._inner.delete(session_id), "sessions.delete", session_id
        )
        self._mode.records.pop(session_id)
        return deleted

    async def update(
        self, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        mode = self._mode
        updated = await mode.unless_local(
            session_id, "sessions.update", lambda: self._inner.update(session_id, change)
        )
        if not isinstance(updated, Missing):
            self._seen(session_id, updated)
            return updated
        base = self._overlay.get(session_id)
        if base is None:
            cached = mode.records.get(session_id)
            if not isinstance(cached, SessionRecord):
                raise mode.refuse("sessions.update", session_id)
            base = cached
        record = base.model_copy(deep=True)
        change(record)
        self._keep(record, "sessions.update")
        return record.model_copy(deep=True)
