"""The machinery the degraded-mode stores share: which failures mean "Redis is
unavailable", the ``state-unavailable`` refusal, the small LRU caches of what this replica
last saw of each session, and :class:`DegradedMode` — the ``redis`` pipeline, the local
sessions, the ordered journal of writes kept in memory and the background resync that
replays it on Redis once it answers again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import CheckpointTuple

from agentfleet_runtime.errors import (
    CallRefusedError,
    DependencyConnectionError,
    DependencyTimeoutError,
    OverloadedError,
)
from agentfleet_runtime.state.base import SessionRecord
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
    from agentfleet_runtime.state.redis_client import ReplicaReads

__all__ = [
    "MISSING",
    "UNAVAILABLE",
    "DegradedMode",
    "Lru",
    "Missing",
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


class Missing:
    """Not in a cache (``None`` is a value there: "known to have nothing")."""


MISSING = Missing()


class Lru[K, V]:
    """A small least-recently-used map (what the replica last saw of a session)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | Missing:
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
        #: Reads on a replica while the primary is unavailable (state/redis_client.py).
        self.replica: ReplicaReads | None = None

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
        """``call`` on Redis, through the pipeline when one is attached. Redis
        unavailable and a replica configured (Sentinel, replica URL): the call runs on the
        replica, which serves it if it only reads (else the primary's error stands)."""
        try:
            pipeline = self.pipeline
            if pipeline is None:
                return await call()
            from agentfleet_runtime.resilience.redis import run

            return await run(pipeline, call)
        except Exception as exc:
            if self.replica is None or not unavailable(exc):
                raise
            try:
                return await self.replica.run(call)
            except Exception:
                raise exc from exc.__cause__  # the primary's unavailability is the answer

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

    async def unless_local[T](
        self, session_id: str, operation: str, call: Callable[[], Awaitable[T]]
    ) -> T | Missing:
        """A session's write on Redis, unless the session is local. ``MISSING`` when the
        caller is to make it in memory instead: the session is local, or Redis is
        unavailable and the fallback on (anything else raises, as :meth:`fall_back`)."""
        if session_id in self.local:
            return MISSING
        try:
            return await self.remote(call)
        except Exception as exc:
            self.fall_back(exc, operation, session_id)
            return MISSING

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
