"""Inboxes and leases in degraded mode: a local session's messages are queued and leased
in this process (a :class:`MemoryTurnQueue`); its idempotency keys are written to Redis
by the resync, so a resend after it is recognised there too. Leases are local while Redis
is unavailable: two replicas cut off from it can both run turns of one session (their
events are renumbered at the resync, see :mod:`.events`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agentfleet_runtime.state.base import Acceptance, Claim, QueuedMessage
from agentfleet_runtime.state.degraded.mode import (
    DegradedMode,
    Lru,
    Missing,
    StateUnavailableError,
    unavailable,
)
from agentfleet_runtime.state.memory import MemoryEventLog, MemoryTurnQueue

if TYPE_CHECKING:
    from agentfleet_runtime.state.redis_turns import RedisTurnQueue

__all__ = ["FallbackTurnQueue"]

log = logging.getLogger(__name__)


class FallbackTurnQueue:
    """The Redis turn queue, with a local one for the sessions kept in memory."""

    def __init__(
        self, inner: RedisTurnQueue, mode: DegradedMode, *, idempotency_ttl: float = 86_400
    ) -> None:
        self._inner = inner
        self._mode = mode
        self._local = MemoryTurnQueue(MemoryEventLog(10), idempotency_ttl=idempotency_ttl)
        mode.on_busy(self._local.busy)
        #: Messages Redis accepted lately, by (session, idempotency key): a client that
        #: resends one while Redis is unavailable gets the first acceptance, not a new turn.
        self._accepted: Lru[tuple[str, str], QueuedMessage] = Lru(4 * mode.records.size)

    async def accept(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str,
        message_id: str,
        stream_tokens: bool = True,
    ) -> Acceptance:
        mode = self._mode
        accepted = await mode.unless_local(
            session_id,
            "turns.accept",
            lambda: self._inner.accept(
                session_id,
                content,
                idempotency_key=idempotency_key,
                message_id=message_id,
                stream_tokens=stream_tokens,
            ),
        )
        if not isinstance(accepted, Missing):
            self._accepted.put((session_id, idempotency_key), accepted.message)
            return accepted
        seen = self._accepted.get((session_id, idempotency_key))
        if isinstance(seen, QueuedMessage) and seen.content == content:
            return Acceptance(message=seen, duplicate=True)  # queued in Redis already
        if session_id not in mode.local and not mode.can_serve(session_id):
            raise mode.refuse("turns.accept", session_id)
        acceptance = await self._local.accept(
            session_id,
            content,
            idempotency_key=idempotency_key,
            message_id=message_id,
            stream_tokens=stream_tokens,
        )
        if not acceptance.duplicate:
            message: QueuedMessage = acceptance.message
            mode.keep(session_id, "turns.accept", lambda: self._inner.remember(message))
        return acceptance

    def _holds(self, session_id: str, owner: str) -> bool:
        return self._local.holds(session_id, owner)

    async def try_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        if session_id in self._mode.local:
            return await self._local.try_lease(session_id, owner, ttl)
        return await self._mode.guarded(
            lambda: self._inner.try_lease(session_id, owner, ttl), "turns.lease", session_id
        )

    async def renew(self, session_id: str, owner: str, ttl: float) -> bool:
        if self._holds(session_id, owner):
            return await self._local.renew(session_id, owner, ttl)
        return await self._mode.guarded(
            lambda: self._inner.renew(session_id, owner, ttl), "turns.renew", session_id
        )

    async def next(self, session_id: str, owner: str, ttl: float, claim_id: str) -> Claim | None:
        if self._holds(session_id, owner):
            return await self._local.next(session_id, owner, ttl, claim_id)
        try:
            claim = await self._mode.guarded(
                lambda: self._inner.next(session_id, owner, ttl, claim_id),
                "turns.next",
                session_id,
            )
        except StateUnavailableError:
            if not self._local.busy(session_id):
                raise
            claim = None  # Redis's inbox waits for Redis; run what was queued here
        if claim is None and self._local.busy(session_id):
            # this process queued more while Redis was unavailable
            await self._local.try_lease(session_id, owner, ttl)
            return await self._local.next(session_id, owner, ttl, claim_id)
        return claim

    async def finish(self, session_id: str, owner: str, claim_id: str) -> None:
        if self._local.claimed(session_id, claim_id):
            await self._local.finish(session_id, owner, claim_id)
            return
        mode = self._mode
        finished = await mode.unless_local(
            session_id, "turns.finish", lambda: self._inner.finish(session_id, owner, claim_id)
        )
        if not isinstance(finished, Missing):
            return
        mode.keep(
            session_id, "turns.finish", lambda: self._inner.finish(session_id, owner, claim_id)
        )

    async def release(self, session_id: str, owner: str) -> None:
        if self._holds(session_id, owner):
            await self._local.release(session_id, owner)
            return
        try:
            await self._mode.remote(lambda: self._inner.release(session_id, owner))
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("lease of %s not released (Redis unavailable): it lapses", session_id)

    async def pending(self, limit: int = 100) -> list[str]:
        local = await self._local.pending(limit)
        try:
            remote = await self._mode.remote(lambda: self._inner.pending(limit))
        except Exception as exc:
            if not unavailable(exc) or not local:
                raise
            remote = []
        return list(dict.fromkeys([*local, *remote]))[:limit]

    async def depth(self, session_id: str) -> int:
        local = await self._local.depth(session_id)
        if session_id in self._mode.local:
            return local
        return local + await self._mode.guarded(
            lambda: self._inner.depth(session_id), "turns.depth", session_id
        )

    async def delete(self, session_id: str) -> None:
        await self._local.delete(session_id)
        await self._mode.guarded(lambda: self._inner.delete(session_id), "turns.delete")
