"""Degraded mode of the Redis state backend: fail fast behind the ``redis`` circuit
breaker, keep serving what this replica can from memory, write it back in order (resync).

Every call of the wrapped stores goes through the ``redis`` resilience pipeline once one
is attached (:meth:`DegradedMode.attach`, from the resilience wiring): a breaker, retries
on a fresh connection (the driver's own retries are switched off: two layers multiply),
a deadline per attempt. When Redis is *unavailable* — a connection error, a timeout, a
full pool, or the breaker refusing — a write goes to an in-memory **overlay** instead and
a **journal** of the writes is kept, in order; a background task replays the journal to
Redis once it answers again. Healthy calls cost no extra round trip: the wrappers only
remember, in small LRU caches, what they just read or wrote (a session's record, its last
event id, its latest checkpoint), so that the replica knows enough to go on when Redis
goes away.

A session whose writes are in the overlay is *local*: all its writes stay in the overlay
(and the journal) until the journal has none of them left and the local turn queue has no
work for it, so its writes reach Redis in the order they were made. What works while Redis
is unavailable:

* sessions this replica knows (record, last event id and latest checkpoint seen here, or
  created here while degraded) take new messages and run their turns on a local queue and
  lease; events continue from the last known id; checkpoints, records and events go to
  the overlay and, once Redis is back, to Redis (``agentfleet_state_resync_writes_total``);
* reads of what the overlay or the caches hold;
* everything else (an unknown session, listing sessions, deleting a local session, an
  agent or API key write) is refused with a retryable 503 ``state-unavailable`` problem
  carrying ``Retry-After``.

Trade-offs, documented in docs/resilience.md: a message accepted while degraded lives in
this process until the resync (a crash loses it); leases are local, so two replicas cut off
from Redis can both run turns of one session — their events are then *renumbered* at the
resync after the ones Redis already has (ids stay contiguous, ``outcome="renumbered"``);
record updates are last-writer-wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.errors import (
    CallRefusedError,
    DependencyConnectionError,
    DependencyTimeoutError,
    OverloadedError,
)
from agentfleet_runtime.state.base import (
    Acceptance,
    Claim,
    QueuedMessage,
    RateDecision,
    SessionRecord,
)
from agentfleet_runtime.state.fanout import Fanout, follow
from agentfleet_runtime.state.memory import (
    MemoryEventLog,
    MemoryRateLimitStore,
    MemoryTurnQueue,
)
from agentfleet_runtime.state.redis_client import (
    STATE_DEGRADED,
    STATE_LOCAL_SESSIONS,
    STATE_RESYNC_PENDING,
    STATE_RESYNC_WRITES,
    STATE_UNAVAILABLE,
)

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from agentfleet_runtime.resilience.pipeline import Pipeline
    from agentfleet_runtime.state.checkpoint import RedisCheckpointSaver
    from agentfleet_runtime.state.redis_events import RedisEventLog
    from agentfleet_runtime.state.redis_stores import RedisRateLimitStore, RedisSessionStore
    from agentfleet_runtime.state.redis_turns import RedisTurnQueue

__all__ = [
    "CachedStore",
    "DegradedMode",
    "FallbackCheckpointSaver",
    "FallbackEventLog",
    "FallbackRateLimitStore",
    "FallbackSessionStore",
    "FallbackTurnQueue",
    "GuardedStore",
    "StateUnavailableError",
    "unavailable",
]

log = logging.getLogger(__name__)

#: Errors that say Redis cannot be used now (as opposed to a refused or conflicting write).
UNAVAILABLE = (DependencyConnectionError, DependencyTimeoutError, OverloadedError, CallRefusedError)


def unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE)


class StateUnavailableError(CallRefusedError):
    """Redis is unavailable and this replica cannot serve the request from memory."""

    slug = "state-unavailable"
    title = "The state store is unavailable"
    reason = "state_unavailable"

    def __init__(self, detail: str, *, retry_after: float | None = None, **extensions: Any) -> None:
        super().__init__(detail, dependency="redis", retry_after=retry_after, **extensions)
        self.retry_after = retry_after


class _Missing:
    """Not in a cache (``None`` is a value there: "known to have nothing")."""


MISSING = _Missing()


class Lru[K, V]:
    """A small least-recently-used map (what the replica last saw of a session)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | _Missing:
        return self._items.get(key, MISSING)

    def put(self, key: K, value: V) -> None:
        items = self._items
        items[key] = value
        items.move_to_end(key)
        if len(items) > self.size:
            items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)


@dataclass(slots=True)
class _Write:
    """A write kept in memory, to replay on Redis. ``done`` judges the replay's result
    (``written`` or ``renumbered``)."""

    session_id: str | None
    operation: str
    replay: Callable[[], Awaitable[Any]]
    done: Callable[[Any], str] | None = None


class DegradedMode:
    """What the wrapped stores share: the pipeline, the caches, the local sessions, the
    journal and its resync task."""

    def __init__(
        self, *, fallback: bool = True, cache_size: int = 1024, resync_interval: float = 0.5
    ) -> None:
        self.pipeline: Pipeline | None = None
        #: Keep serving from memory while Redis is unavailable (else refuse with 503).
        self.fallback = fallback
        self._enabled: Callable[[], bool] = lambda: True
        self.resync_interval = resync_interval
        #: What this replica last saw of each session (no extra round trip to learn it).
        self.records: Lru[str, SessionRecord] = Lru(cache_size)
        self.last_ids: Lru[str, int] = Lru(cache_size)
        self.checkpoints: Lru[str, CheckpointTuple | None] = Lru(cache_size)
        #: Sessions whose writes go to the overlay until the journal has them in Redis.
        self.local: set[str] = set()
        self.journal: deque[_Write] = deque()
        self.since: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._forget: list[Callable[[str], None]] = []
        self._busy: list[Callable[[str], bool]] = []
        self._closed = False

    # -- wiring ---------------------------------------------------------------------------

    def attach(
        self,
        pipeline: Pipeline,
        *,
        enabled: Callable[[], bool] = lambda: True,
        client: aioredis.Redis | None = None,
    ) -> None:
        """Run every call through ``pipeline`` (the ``redis`` one). ``enabled``: whether
        to fall back to memory (the ``fallback`` feature flag, read at each failure).
        ``client``'s driver retries are switched off: the pipeline retries, each time on
        a fresh connection."""
        self.pipeline = pipeline
        self._enabled = enabled
        if client is not None:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client.set_retry(Retry(NoBackoff(), 0))

    def on_forget(self, forget: Callable[[str], None]) -> None:
        self._forget.append(forget)

    def on_busy(self, busy: Callable[[str], bool]) -> None:
        self._busy.append(busy)

    @property
    def degraded(self) -> bool:
        return self._pending()

    def _pending(self) -> bool:
        return bool(self.local or self.journal)

    @property
    def enabled(self) -> bool:
        return self.fallback and self._enabled()

    # -- calls ----------------------------------------------------------------------------

    async def remote[T](self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` on Redis, through the pipeline when one is attached."""
        pipeline = self.pipeline
        if pipeline is None:
            return await call()
        from agentfleet_runtime.resilience.redis import run

        return await run(pipeline, call)

    async def guarded[T](
        self, call: Callable[[], Awaitable[T]], operation: str, session: str | None = None
    ) -> T:
        """``call`` on Redis; unavailability becomes a ``state-unavailable`` refusal."""
        try:
            return await self.remote(call)
        except Exception as exc:
            if unavailable(exc):
                raise self.refuse(operation, session) from exc
            raise

    def fall_back(self, exc: Exception, operation: str, session: str | None = None) -> None:
        """After a failed Redis call: returns when the caller may serve it from memory;
        raises otherwise (not an unavailability, or the fallback is switched off)."""
        if not unavailable(exc):
            raise exc
        if not self.enabled:
            raise self.refuse(operation, session) from exc
        if self.since is None:
            self.since = time.monotonic()
            STATE_DEGRADED.set(1)
            log.warning(
                "redis unavailable: state kept in memory until it answers again (%s)",
                getattr(exc, "detail", exc),
                extra={"operation": operation, "session": session},
            )

    def retry_after(self) -> float:
        pipeline = self.pipeline
        if pipeline is not None and pipeline.breaker.refusing:
            return max(1.0, pipeline.breaker.retry_after())
        return 1.0

    def refuse(self, operation: str, session: str | None = None) -> StateUnavailableError:
        STATE_UNAVAILABLE.labels(operation).inc()
        what = f"session {session}: " if session else ""
        return StateUnavailableError(
            f"{what}{operation} needs Redis, which is unavailable; retry later",
            retry_after=self.retry_after(),
            operation=operation,
        )

    def can_serve(self, session_id: str) -> bool:
        """Whether this replica knows enough of a session to run its turns without Redis."""
        return session_id in self.local or (
            session_id in self.records
            and session_id in self.last_ids
            and session_id in self.checkpoints
        )

    def keep(
        self,
        session_id: str | None,
        operation: str,
        replay: Callable[[], Awaitable[Any]],
        done: Callable[[Any], str] | None = None,
    ) -> None:
        """Journal a write made in memory (for ``session_id``: it becomes local)."""
        if session_id is not None:
            self.local.add(session_id)
        self.journal.append(_Write(session_id, operation, replay, done))
        self._gauges()
        self._start()

    # -- resync ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._wake.set()
        if self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(
            self._resync_loop(), name="state resync"
        )

    async def _resync_loop(self) -> None:
        while not self._closed and self._pending():
            pipeline = self.pipeline
            if pipeline is not None and pipeline.refusing:  # wait for the breaker's probe
                await asyncio.sleep(
                    min(max(pipeline.breaker.retry_after(), 0.01), self.resync_interval)
                )
                continue
            try:
                await self.resync()
            except Exception:  # never let the loop die: the journal must drain
                log.exception("state resync failed")
            if not self._pending():
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_interval)

    async def resync(self) -> int:
        """Replay the journal on Redis, in order, until it is empty or Redis fails again;
        then release the sessions that have nothing left in memory. Answers how many
        writes reached Redis."""
        written = 0
        async with self._lock:
            while self.journal:
                write = self.journal[0]
                try:
                    result = await self.remote(write.replay)
                except Exception as exc:
                    if unavailable(exc):
                        break  # still down: keep it, try again later
                    self.journal.popleft()
                    STATE_RESYNC_WRITES.labels(write.operation, "dropped").inc()
                    log.error(
                        "state resync: %s refused by Redis, dropped: %s",
                        write.operation,
                        exc,
                        extra={"session": write.session_id},
                    )
                    continue
                self.journal.popleft()
                outcome = write.done(result) if write.done is not None else "written"
                STATE_RESYNC_WRITES.labels(write.operation, outcome).inc()
                written += 1
            self._release_idle()
        if written:
            log.info("state resync: %d writes kept in memory are in Redis now", written)
        return written

    def _release_idle(self) -> None:
        journaled = {write.session_id for write in self.journal}
        for session_id in list(self.local):
            if session_id in journaled or any(busy(session_id) for busy in self._busy):
                continue
            self.local.discard(session_id)
            for forget in self._forget:
                forget(session_id)
        if not self._pending() and self.since is not None:
            log.warning(
                "redis state resynced after %.1f s in degraded mode",
                time.monotonic() - self.since,
            )
            self.since = None
        self._gauges()

    def _gauges(self) -> None:
        STATE_DEGRADED.set(1 if self.since is not None or self.degraded else 0)
        STATE_LOCAL_SESSIONS.set(len(self.local))
        STATE_RESYNC_PENDING.set(len(self.journal))

    async def aclose(self, *, grace: float = 2.0) -> None:
        """A last resync attempt (bounded), then stop; what is left is logged as lost."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.journal:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(grace):
                    await self.resync()
        if self.journal:
            log.error(
                "state resync: %d writes never reached Redis (it was unavailable until shutdown)",
                len(self.journal),
            )


# -- the stores ------------------------------------------------------------------------


class GuardedStore:
    """``store`` with every coroutine method run through the mode's pipeline (fail fast
    behind the breaker, ``state-unavailable`` when Redis is down); no local fallback.
    The pipeline is looked up at each call: it is attached after the stores are built."""

    def __init__(self, store: object, mode: DegradedMode, name: str) -> None:
        self._store = store
        self._mode = mode
        self._name = name
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, attr: str) -> Any:
        wrapped = self._wrapped.get(attr)
        if wrapped is not None:
            return wrapped
        value = getattr(self._store, attr)
        import inspect

        if not inspect.iscoroutinefunction(value):
            return value
        mode, operation = self._mode, f"{self._name}.{attr}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await mode.guarded(lambda: value(*args, **kwargs), operation)

        self._wrapped[attr] = call
        return call


class CachedStore[R: BaseModel]:
    """A small registry (agents, tenants): reads fall back to the last records seen here
    while Redis is unavailable; writes need Redis (``state-unavailable`` otherwise)."""

    def __init__(self, inner: Any, mode: DegradedMode, name: str, key: Callable[[R], str]) -> None:
        self._inner = inner
        self._mode = mode
        self._name = name
        self._key = key
        #: The last answer for each key (``None``: known not to exist).
        self._seen: dict[str, R | None] = {}

    async def put(self, record: R) -> None:
        await self._mode.guarded(lambda: self._inner.put(record), f"{self._name}.put")
        self._seen[self._key(record)] = record

    async def get(self, key: str) -> R | None:
        try:
            record: R | None = await self._mode.remote(lambda: self._inner.get(key))
        except Exception as exc:
            self._mode.fall_back(exc, f"{self._name}.get")
            if key in self._seen:
                seen = self._seen[key]
                return seen.model_copy(deep=True) if seen is not None else None
            raise self._mode.refuse(f"{self._name}.get") from exc
        self._seen[key] = record
        return record

    async def list(self) -> list[R]:
        try:
            records: list[R] = await self._mode.remote(self._inner.list)
        except Exception as exc:
            self._mode.fall_back(exc, f"{self._name}.list")
            return [r.model_copy(deep=True) for _, r in sorted(self._seen.items()) if r]
        self._seen = {self._key(r): r for r in records}
        return records

    async def delete(self, key: str) -> bool:
        deleted: bool = await self._mode.guarded(
            lambda: self._inner.delete(key), f"{self._name}.delete"
        )
        self._seen[key] = None
        return deleted


class FallbackRateLimitStore:
    """Shared token buckets; while Redis is unavailable (or its breaker refuses) each
    replica uses its own buckets (limits per replica instead of shared: documented)."""

    def __init__(self, inner: RedisRateLimitStore, mode: DegradedMode) -> None:
        self._inner = inner
        self._mode = mode
        self._local = MemoryRateLimitStore()

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        pipeline = self._mode.pipeline
        if pipeline is None or not pipeline.refusing:
            # not through the pipeline: the resilience layer's own limiters use this store
            try:
                return await self._inner.acquire(key, rate=rate, burst=burst, cost=cost)
            except Exception as exc:
                if not unavailable(exc) or not self._mode.enabled:
                    raise
        return await self._local.acquire(key, rate=rate, burst=burst, cost=cost)

    async def reset(self, key: str) -> None:
        await self._local.reset(key)
        await self._inner.reset(key)


class FallbackSessionStore:
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

    async def put(self, record: SessionRecord) -> None:
        mode = self._mode
        if record.id not in mode.local:
            try:
                await mode.remote(lambda: self._inner.put(record))
            except Exception as exc:
                mode.fall_back(exc, "sessions.put", record.id)
            else:
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
        if record is None:
            mode.records.pop(session_id)
        else:
            mode.records.put(session_id, record)
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
        if session_id not in mode.local:
            try:
                record = await mode.remote(lambda: self._inner.update(session_id, change))
            except Exception as exc:
                mode.fall_back(exc, "sessions.update", session_id)
            else:
                if record is None:
                    mode.records.pop(session_id)
                else:
                    mode.records.put(session_id, record)
                return record
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


class _LocalEvents:
    def __init__(self, base: int) -> None:
        #: The last id Redis had (as far as this replica knows) when the session went local.
        self.base = base
        self.events: list[TurnEvent] = []
        self.last_key: tuple[str, int] | None = None

    @property
    def last_id(self) -> int:
        return self.events[-1]["id"] if self.events else self.base


class FallbackEventLog:
    """Events: while a session is local, appends continue from its last known id in
    memory (local followers get them at once) and are appended to Redis, in order, by
    the resync; a renumbering (someone else appended meanwhile) makes followers re-read."""

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
        if session_id not in mode.local:
            try:
                stored = await mode.remote(
                    lambda: self._inner.append(
                        session_id, turn_id, type_, data, seq=seq, fence=fence
                    )
                )
            except Exception as exc:
                mode.fall_back(exc, "events.append", session_id)
            else:
                mode.last_ids.put(session_id, stored["id"])
                return stored
        local = self._local.get(session_id)
        if local is None:
            last = mode.last_ids.get(session_id)
            if not isinstance(last, int):
                raise mode.refuse("events.append", session_id)
            local = self._local[session_id] = _LocalEvents(last)
        if seq is not None and local.last_key == (turn_id, seq) and local.events:
            return local.events[-1]  # a retried append
        event: TurnEvent = {
            "id": local.last_id + 1,
            "type": type_,
            "session_id": session_id,
            "turn_id": turn_id,
            "data": data,
            "ts": time.time(),
        }
        local.events.append(event)
        local.last_key = (turn_id, seq) if seq is not None else None
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


class FallbackTurnQueue:
    """Inboxes and leases: a local session's messages are queued and leased in this
    process (a :class:`MemoryTurnQueue`); its idempotency keys are written to Redis by
    the resync, so a resend after it is recognised there too."""

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
        if session_id not in mode.local:
            try:
                acceptance = await mode.remote(
                    lambda: self._inner.accept(
                        session_id,
                        content,
                        idempotency_key=idempotency_key,
                        message_id=message_id,
                        stream_tokens=stream_tokens,
                    )
                )
            except Exception as exc:
                mode.fall_back(exc, "turns.accept", session_id)
            else:
                self._accepted.put((session_id, idempotency_key), acceptance.message)
                return acceptance
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
        if session_id not in mode.local:
            try:
                await mode.remote(lambda: self._inner.finish(session_id, owner, claim_id))
            except Exception as exc:
                mode.fall_back(exc, "turns.finish", session_id)
            else:
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


class FallbackCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints: a local session's checkpoints go to an ``InMemorySaver``
    (complete: every channel's value, so it reads back without Redis) and, by the resync,
    to Redis. The latest checkpoint of each session seen here is remembered (a reference,
    not a copy) so a turn can start from it while Redis is down."""

    def __init__(self, inner: RedisCheckpointSaver, mode: DegradedMode) -> None:
        super().__init__(serde=inner.serde)
        self._inner = inner
        self._mode = mode
        self._local = InMemorySaver(serde=inner.serde)
        mode.on_forget(self._local.delete_thread)

    @staticmethod
    def _thread(config: RunnableConfig) -> str:
        return str(config["configurable"]["thread_id"])

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread = self._thread(config)
        mode = self._mode
        latest = not get_checkpoint_id(config) and not config["configurable"].get("checkpoint_ns")
        if thread in mode.local:
            found = await self._local.aget_tuple(config)
            if found is not None:
                return found
            if latest and thread in mode.checkpoints:
                return self._cached(thread)
        try:
            found = await mode.remote(lambda: self._inner.aget_tuple(config))
        except Exception as exc:
            mode.fall_back(exc, "checkpoints.get", thread)
            if latest and thread in mode.checkpoints:
                return self._cached(thread)
            raise mode.refuse("checkpoints.get", thread) from exc
        if latest:
            cached = mode.checkpoints.get(thread)
            if found is None:
                mode.checkpoints.put(thread, None)
            elif not (
                isinstance(cached, CheckpointTuple)
                and cached.checkpoint["id"] == found.checkpoint["id"]
            ):  # a copy: LangGraph changes the checkpoint it loaded in place
                mode.checkpoints.put(
                    thread, found._replace(checkpoint=copy_checkpoint(found.checkpoint))
                )
        return found

    def _cached(self, thread: str) -> CheckpointTuple | None:
        cached = self._mode.checkpoints.get(thread)
        if not isinstance(cached, CheckpointTuple):
            return None
        return cached._replace(checkpoint=copy_checkpoint(cached.checkpoint))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is not None and self._thread(config) in self._mode.local:
            async for item in self._local.alist(config, filter=filter, before=before, limit=limit):
                yield item
            return
        try:
            async for item in self._inner.alist(config, filter=filter, before=before, limit=limit):
                yield item
        except Exception as exc:
            if unavailable(exc):
                raise self._mode.refuse("checkpoints.list") from exc
            raise

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread = self._thread(config)
        mode = self._mode
        if thread not in mode.local:
            try:
                saved = await mode.remote(
                    lambda: self._inner.aput(config, checkpoint, metadata, new_versions)
                )
            except Exception as exc:
                mode.fall_back(exc, "checkpoints.put", thread)
            else:
                self._remember(config, saved, checkpoint, metadata)
                return saved
        kept = cast(
            Checkpoint, {**checkpoint, "channel_values": dict(checkpoint["channel_values"])}
        )
        # every channel, not only the new versions: the older blobs are in Redis only
        saved = await self._local.aput(config, kept, metadata, dict(kept["channel_versions"]))
        versions = dict(new_versions)
        mode.keep(
            thread,
            "checkpoints.put",
            lambda: self._inner.aput(config, kept, metadata, versions),
        )
        self._remember(config, saved, kept, metadata)
        return saved

    def _remember(
        self,
        config: RunnableConfig,
        saved: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
    ) -> None:
        if saved["configurable"].get("checkpoint_ns", ""):
            return  # a subgraph's: the session's latest is the root namespace's
        parent = config["configurable"].get("checkpoint_id")
        self._mode.checkpoints.put(
            self._thread(config),
            CheckpointTuple(
                config=saved,
                checkpoint=checkpoint,
                metadata=get_checkpoint_metadata(config, metadata),
                parent_config=(
                    {"configurable": {**config["configurable"], "checkpoint_id": parent}}
                    if parent
                    else None
                ),
                pending_writes=[],
            ),
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread = self._thread(config)
        mode = self._mode
        if thread not in mode.local:
            try:
                await mode.remote(
                    lambda: self._inner.aput_writes(config, writes, task_id, task_path)
                )
            except Exception as exc:
                mode.fall_back(exc, "checkpoints.put_writes", thread)
            else:
                self._remember_writes(config, writes, task_id)
                return
        kept = list(writes)
        await self._local.aput_writes(config, kept, task_id, task_path)
        self._remember_writes(config, kept, task_id)
        mode.keep(
            thread,
            "checkpoints.put_writes",
            lambda: self._inner.aput_writes(config, kept, task_id, task_path),
        )

    def _remember_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        thread = self._thread(config)
        cached = self._mode.checkpoints.get(thread)
        if (
            isinstance(cached, CheckpointTuple)
            and cached.checkpoint["id"] == config["configurable"].get("checkpoint_id")
            and not config["configurable"].get("checkpoint_ns")
        ):
            pending = [*(cached.pending_writes or []), *((task_id, c, v) for c, v in writes)]
            self._mode.checkpoints.put(thread, cached._replace(pending_writes=pending))

    async def adelete_thread(self, thread_id: str) -> None:
        if thread_id in self._mode.local:
            raise self._mode.refuse("checkpoints.delete", thread_id)
        await self._mode.guarded(
            lambda: self._inner.adelete_thread(thread_id), "checkpoints.delete", thread_id
        )
        self._mode.checkpoints.pop(thread_id)

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self._inner.get_next_version(current, channel)

    # -- the sync interface is not offered (as the Redis saver's) -------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._inner.get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self._inner.list(config, filter=filter, before=before, limit=limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._inner.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._inner.put_writes(config, writes, task_id, task_path)
