"""In-memory state: the development default. A real implementation (not a mock) for one
process; state is lost on restart and not shared between replicas."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.auth.apikeys import ApiKeyRecord
from agentfleet_runtime.state.base import (
    Acceptance,
    AgentRecord,
    BreakerState,
    Claim,
    IdempotencyConflictError,
    LeaseLostError,
    QueuedMessage,
    RateDecision,
    SessionRecord,
)
from agentfleet_runtime.state.fanout import Fanout, follow
from agentfleet_runtime.tenants import TenantRecord


class MemoryAgentStore:
    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}

    async def put(self, record: AgentRecord) -> None:
        self._agents[record.key] = record.model_copy(deep=True)

    async def get(self, key: str) -> AgentRecord | None:
        record = self._agents.get(key)
        return record.model_copy(deep=True) if record else None

    async def list(self) -> list[AgentRecord]:
        return [r.model_copy(deep=True) for _, r in sorted(self._agents.items())]

    async def delete(self, key: str) -> bool:
        return self._agents.pop(key, None) is not None


class MemoryApiKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}

    async def put(self, record: ApiKeyRecord) -> None:
        self._keys[record.id] = record.model_copy(deep=True)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        record = self._keys.get(key_id)
        return record.model_copy(deep=True) if record else None

    async def list(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        records = [r for r in self._keys.values() if tenant is None or r.tenant == tenant]
        return [r.model_copy(deep=True) for r in sorted(records, key=lambda r: r.created_at)]

    async def delete(self, key_id: str) -> bool:
        return self._keys.pop(key_id, None) is not None


class MemoryTenantStore:
    def __init__(self) -> None:
        self._tenants: dict[str, TenantRecord] = {}

    async def put(self, record: TenantRecord) -> None:
        self._tenants[record.id] = record.model_copy(deep=True)

    async def get(self, tenant_id: str) -> TenantRecord | None:
        record = self._tenants.get(tenant_id)
        return record.model_copy(deep=True) if record else None

    async def list(self) -> list[TenantRecord]:
        return [r.model_copy(deep=True) for _, r in sorted(self._tenants.items())]

    async def delete(self, tenant_id: str) -> bool:
        return self._tenants.pop(tenant_id, None) is not None


def _copy_session(record: SessionRecord) -> SessionRecord:
    """An independent copy: every field is immutable but ``metadata`` (cheaper than a deep
    copy, which showed in the turn benchmark's profile)."""
    return record.model_copy(update={"metadata": dict(record.metadata)})


class MemorySessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, SessionRecord] = {}

    async def put(self, record: SessionRecord) -> None:
        self._sessions[record.id] = _copy_session(record)

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._sessions.get(session_id)
        return _copy_session(record) if record else None

    async def list(
        self, *, agent: str | None = None, tenant: str | None = None
    ) -> list[SessionRecord]:
        records = [
            r
            for r in self._sessions.values()
            if (agent is None or r.agent == agent) and (tenant is None or r.tenant == tenant)
        ]
        return [_copy_session(r) for r in sorted(records, key=lambda r: r.created_at)]

    async def delete(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    async def update(
        self, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        record = self._sessions.get(session_id)
        if record is None:
            return None
        change(record)  # no await between read and write: atomic in one event loop
        return _copy_session(record)


class SessionEvents:
    """One session's events in memory, numbered on from ``last_id``: the memory backend's
    log (the last ``max_events``), and the Redis backend's degraded mode's events of a
    session kept in memory (``state/degraded/events.py``)."""

    def __init__(self, max_events: int | None = None, *, last_id: int = 0) -> None:
        self.events: deque[TurnEvent] = deque(maxlen=max_events)
        self.last_id = last_id
        self.last_key: tuple[str, int] | None = None

    def retried(self, turn_id: str, seq: int | None) -> TurnEvent | None:
        """The event of a retried append (the last one's turn and ``seq``), if it is one."""
        if seq is not None and self.last_key == (turn_id, seq) and self.events:
            return self.events[-1]
        return None

    def add(
        self, session_id: str, turn_id: str, type_: str, data: dict[str, Any], seq: int | None
    ) -> TurnEvent:
        """Record a new event with the next id."""
        self.last_id += 1
        event: TurnEvent = {
            "id": self.last_id,
            "type": type_,
            "session_id": session_id,
            "turn_id": turn_id,
            "data": data,
            "ts": time.time(),
        }
        self.events.append(event)
        self.last_key = (turn_id, seq) if seq is not None else None
        return event


class MemoryEventLog:
    """Keeps the last ``max_events`` events of each session."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._max_events = max_events
        self._sessions: dict[str, SessionEvents] = {}
        self.fanout = Fanout()
        #: Lease owners by session (set by :class:`MemoryTurnQueue`), for fencing.
        self.leases: dict[str, tuple[str, float]] = {}

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
        if fence is not None:
            owner, expires = self.leases.get(session_id, ("", 0.0))
            if owner != fence or expires < time.monotonic():
                raise LeaseLostError(f"session {session_id} is leased by another replica")
        log = self._sessions.setdefault(session_id, SessionEvents(self._max_events))
        retried = log.retried(turn_id, seq)
        if retried is not None:
            return retried
        event = log.add(session_id, turn_id, type_, data, seq)
        self.fanout.publish(event)
        return event

    async def read(
        self, session_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[TurnEvent]:
        log = self._sessions.get(session_id)
        if log is None:
            return []
        events = [e for e in log.events if e["id"] > after]
        return events[:limit] if limit is not None else events

    async def last_id(self, session_id: str) -> int:
        log = self._sessions.get(session_id)
        return log.last_id if log else 0

    async def _read_page(self, session_id: str, after: int, limit: int) -> list[TurnEvent]:
        return await self.read(session_id, after=after, limit=limit)

    def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        return follow(self.fanout, self._read_page, session_id, after=after)

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


class _Inbox:
    def __init__(self) -> None:
        self.queue: deque[QueuedMessage] = deque()
        self.inflight: Claim | None = None


class MemoryTurnQueue:
    """Inboxes and leases in this process (leases still expire, as on Redis, so the
    dispatcher's recovery path behaves the same)."""

    def __init__(self, events: MemoryEventLog, *, idempotency_ttl: float = 86_400) -> None:
        self._events = events
        self._inboxes: dict[str, _Inbox] = {}
        self._idempotency: dict[tuple[str, str], tuple[QueuedMessage, float]] = {}
        self._idempotency_ttl = idempotency_ttl
        self._pending: dict[str, float] = {}

    @property
    def _leases(self) -> dict[str, tuple[str, float]]:
        return self._events.leases

    async def accept(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str,
        message_id: str,
        stream_tokens: bool = True,
    ) -> Acceptance:
        now = time.monotonic()
        key = (session_id, idempotency_key)
        seen = self._idempotency.get(key)
        if seen is not None and seen[1] > now:
            if seen[0].content != content:
                raise IdempotencyConflictError(
                    f"idempotency key {idempotency_key!r} was used for another message",
                    session=session_id,
                )
            return Acceptance(message=seen[0], duplicate=True)
        message = QueuedMessage(
            message_id=message_id,
            turn_id="turn_" + message_id.removeprefix("msg_"),
            session_id=session_id,
            content=content,
            idempotency_key=idempotency_key,
            accepted_at=time.time(),
            stream_tokens=stream_tokens,
        )
        self._idempotency[key] = (message, now + self._idempotency_ttl)
        self._inboxes.setdefault(session_id, _Inbox()).queue.append(message)
        self._pending.setdefault(session_id, time.time())
        return Acceptance(message=message)

    def _holds(self, session_id: str, owner: str) -> bool:
        holder, expires = self._leases.get(session_id, ("", 0.0))
        return holder == owner and expires >= time.monotonic()

    # Used by the Redis backend's degraded mode (state/degraded/turns.py), which queues a
    # session's turns here while Redis is unavailable.
    holds = _holds

    def busy(self, session_id: str) -> bool:
        """Whether the session has queued or in-flight messages or a lease here."""
        inbox = self._inboxes.get(session_id)
        if inbox and (inbox.queue or inbox.inflight):
            return True
        return self._leases.get(session_id, ("", 0.0))[1] >= time.monotonic()

    def claimed(self, session_id: str, claim_id: str) -> bool:
        inbox = self._inboxes.get(session_id)
        return bool(inbox and inbox.inflight and inbox.inflight.claim_id == claim_id)

    async def try_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        holder, expires = self._leases.get(session_id, ("", 0.0))
        if holder and holder != owner and expires >= time.monotonic():
            return False
        self._leases[session_id] = (owner, time.monotonic() + ttl)
        return True

    async def renew(self, session_id: str, owner: str, ttl: float) -> bool:
        if not self._holds(session_id, owner):
            return False
        self._leases[session_id] = (owner, time.monotonic() + ttl)
        return True

    async def next(self, session_id: str, owner: str, ttl: float, claim_id: str) -> Claim | None:
        if not self._holds(session_id, owner):
            raise LeaseLostError(f"session {session_id} is leased by another replica")
        self._leases[session_id] = (owner, time.monotonic() + ttl)
        inbox = self._inboxes.setdefault(session_id, _Inbox())
        if inbox.inflight is not None:
            if inbox.inflight.claim_id != claim_id:
                inbox.inflight = Claim(
                    message=inbox.inflight.message,
                    attempt=inbox.inflight.attempt + 1,
                    claim_id=claim_id,
                )
            return inbox.inflight
        if not inbox.queue:
            self._leases.pop(session_id, None)
            self._pending.pop(session_id, None)
            return None
        inbox.inflight = Claim(message=inbox.queue.popleft(), attempt=1, claim_id=claim_id)
        return inbox.inflight

    async def finish(self, session_id: str, owner: str, claim_id: str) -> None:
        inbox = self._inboxes.get(session_id)
        if inbox is not None and inbox.inflight and inbox.inflight.claim_id == claim_id:
            inbox.inflight = None

    async def release(self, session_id: str, owner: str) -> None:
        if self._leases.get(session_id, ("", 0.0))[0] == owner:
            self._leases.pop(session_id, None)

    async def pending(self, limit: int = 100) -> list[str]:
        return sorted(self._pending, key=self._pending.__getitem__)[:limit]

    async def depth(self, session_id: str) -> int:
        inbox = self._inboxes.get(session_id)
        return len(inbox.queue) if inbox else 0

    async def delete(self, session_id: str) -> None:
        self._inboxes.pop(session_id, None)
        self._pending.pop(session_id, None)
        self._leases.pop(session_id, None)
        for key in [k for k in self._idempotency if k[0] == session_id]:
            del self._idempotency[key]


class MemoryRateLimitStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._clock = clock

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return RateDecision(allowed=True, remaining=int(tokens - cost), retry_after=0.0)
        self._buckets[key] = (tokens, now)
        wait = (cost - tokens) / rate if rate > 0 else float("inf")
        return RateDecision(allowed=False, remaining=int(tokens), retry_after=wait)

    async def reset(self, key: str) -> None:
        self._buckets.pop(key, None)


class MemoryBreakerStateStore:
    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}

    async def get(self, name: str) -> BreakerState:
        state = self._states.get(name)
        return state.model_copy(deep=True) if state else BreakerState()

    async def compare_and_set(self, name: str, expected_version: int, new: BreakerState) -> bool:
        current = self._states.get(name, BreakerState())
        if current.version != expected_version:
            return False
        self._states[name] = new.model_copy(update={"version": expected_version + 1}, deep=True)
        return True

    async def update(
        self, name: str, change: Callable[[BreakerState], Awaitable[None] | None]
    ) -> BreakerState:
        while True:
            state = await self.get(name)
            expected = state.version
            result = change(state)
            if result is not None:
                await result
            if await self.compare_and_set(name, expected, state):
                return await self.get(name)
            await asyncio.sleep(random.uniform(0, 0.005))

    async def incr_failures(self, name: str) -> int:
        state = self._states.setdefault(name, BreakerState())
        state.failures += 1
        state.version += 1
        return state.failures

    async def delete(self, name: str) -> None:
        self._states.pop(name, None)
