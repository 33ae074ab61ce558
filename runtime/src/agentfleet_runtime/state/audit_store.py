"""Where audit events are kept so that ``GET /api/v1/audit`` shows every replica's.

* ``memory``: this process's bounded ring buffer (:class:`~agentfleet_runtime.audit.AuditTrail`).
* ``redis``: one capped stream per tenant, written with ``XADD … MAXLEN ~ N`` (and, with
  a retention age, ``XTRIM … MINID ~``); events that belong to no tenant (refused
  credentials, secret access) have a stream of their own, shown to the operator tenant.

Recording never waits for the store: :class:`AuditWriter` is the audit log's sink; it
queues events in memory (bounded) and a background task writes them in batches. While
the store fails (Redis down) events stay queued, are still listed by this replica, and are
written once it answers; the oldest are dropped past the bound (counted).

Redis layout (``<p>`` = ``<prefix>:<namespace>``):

===========================  ======  =================================================
``<p>:audit:t:<tenant>``     STREAM  the tenant's events (field ``e``: the event JSON),
                                     capped at about ``audit_max_events``
``<p>:audit:none``           STREAM  events of no tenant, capped the same way
===========================  ======  =================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from agentfleet_runtime.audit import AuditEvent, AuditQuery, AuditTrail
from agentfleet_runtime.state.redis_client import Keys, translate_errors

log = logging.getLogger(__name__)

AUDIT_WRITE_FAILURES = Counter(
    "agentfleet_audit_write_failures_total",
    "Batches of audit events the state backend refused (kept in memory and retried)",
)
AUDIT_DROPPED = Counter(
    "agentfleet_audit_dropped_total",
    "Audit events dropped before they reached the state backend (the in-memory queue was "
    "full while the store was unavailable); the log stream still has them",
)
AUDIT_PENDING = Gauge(
    "agentfleet_audit_pending",
    "Audit events recorded by this replica and not yet written to the state backend",
)

#: Replica and Redis clocks differ: stream ids are searched this much earlier than asked.
CLOCK_SKEW = timedelta(minutes=5)


class AuditStore(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None: ...

    async def list(self, query: AuditQuery) -> list[AuditEvent]:
        """Matching events, newest first."""
        ...


def _retained(query: AuditQuery, retention_seconds: int) -> AuditQuery:
    """``query`` without events older than the retention age."""
    if retention_seconds <= 0:
        return query
    oldest = datetime.now(UTC) - timedelta(seconds=retention_seconds)
    if query.since is not None and query.since >= oldest:
        return query
    return replace(query, since=oldest)


class MemoryAuditStore:
    """This process's last ``max_events`` events."""

    def __init__(self, max_events: int = 10_000, *, retention_seconds: int = 0) -> None:
        self.trail = AuditTrail(max_events)
        self._retention = retention_seconds

    async def append(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            self.trail(event)

    async def list(self, query: AuditQuery) -> list[AuditEvent]:
        return self.trail.list(_retained(query, self._retention))


class RedisAuditStore:
    """One capped stream per tenant (plus one for events of no tenant)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        max_events: int = 10_000,
        retention_seconds: int = 0,
    ) -> None:
        self._r = client
        self._base = f"{keys.base}:audit"
        self._max = max_events
        self._retention = retention_seconds

    def _key(self, tenant: str | None) -> str:
        return f"{self._base}:none" if tenant is None else f"{self._base}:t:{tenant}"

    @translate_errors
    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            touched: set[str] = set()
            for event in events:
                key = self._key(event.tenant)
                touched.add(key)
                pipe.xadd(key, {"e": event.to_json()}, maxlen=self._max, approximate=True)
            if self._retention > 0:
                oldest = datetime.now(UTC) - timedelta(seconds=self._retention)
                for key in touched:
                    pipe.xtrim(key, minid=_stream_id(oldest - CLOCK_SKEW), approximate=True)
            await pipe.execute()

    @translate_errors
    async def list(self, query: AuditQuery) -> list[AuditEvent]:
        query = _retained(query, self._retention)
        keys = [self._key(query.tenant)] if query.tenant is not None else None
        if keys is not None and query.untenanted:
            keys.append(self._key(None))
        if keys is None:  # every tenant's
            keys = [self._key(None)]
            async for raw in self._r.scan_iter(match=f"{self._base}:t:*", count=500):
                keys.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        # An entry's id is when Redis got it: not before the event happened (give or take
        # the clocks' skew), possibly long after (written late, after an outage). So ids
        # bound ``since`` only; the event's own time decides.
        low = "-" if query.since is None else _stream_id(query.since - CLOCK_SKEW)
        found: list[AuditEvent] = []
        for key in keys:
            for _id, entry in await self._r.xrevrange(key, max="+", min=low) or []:
                data = (entry or {}).get(b"e")
                if data is None:
                    continue
                event = AuditEvent.from_json(data)
                if query.matches(event):
                    found.append(event)
        found.sort(key=lambda e: e.at, reverse=True)
        return found


def _stream_id(at: datetime) -> str:
    return str(max(0, int(at.timestamp() * 1000)))


class AuditWriter:
    """The audit log's sink for the state backend: queues each event (never blocks, never
    raises) and writes the queue in batches from a background task (:meth:`start`). While
    the store fails, events stay queued (at most ``capacity``; the oldest are dropped past
    that), :meth:`list` still shows them, and writing is retried with backoff."""

    def __init__(
        self,
        capacity: int = 10_000,
        *,
        batch_size: int = 256,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 30.0,
        flush_seconds: float = 2.0,
    ) -> None:
        self._flush = flush_seconds
        self._capacity = capacity
        self._batch = batch_size
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._pending: deque[AuditEvent] = deque()
        self._wake = asyncio.Event()
        self._store: AuditStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def __call__(self, event: AuditEvent) -> None:
        if len(self._pending) >= self._capacity:
            self._pending.popleft()
            AUDIT_DROPPED.inc()
        self._pending.append(event)
        AUDIT_PENDING.set(len(self._pending))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self, store: AuditStore) -> None:
        """Write to ``store`` from now on (events queued before are written first)."""
        self._store = store
        self._closing = False
        self._wake = asyncio.Event()  # of this loop (an app may be started more than once)
        self._task = asyncio.get_running_loop().create_task(self._run(store))
        self._wake.set()

    async def aclose(self) -> None:
        """Write what is queued (for up to ``flush_seconds``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(task, self._flush)
        except TimeoutError:
            log.warning("audit events not written at shutdown", extra={"events": self.pending})
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def list(self, query: AuditQuery) -> list[AuditEvent]:
        """The store's matching events and this replica's not yet written, newest first."""
        queued = [e for e in self._pending if query.matches(e)]  # before reading the store
        stored = await self._store.list(query) if self._store is not None else []
        seen = {e.id for e in stored}
        extra = [e for e in queued if e.id not in seen]
        if not extra:
            return stored
        return sorted([*stored, *extra], key=lambda e: e.at, reverse=True)

    async def _run(self, store: AuditStore) -> None:
        delay = self._retry
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [self._pending[i] for i in range(min(self._batch, len(self._pending)))]
                try:
                    await store.append(batch)
                except Exception as exc:
                    AUDIT_WRITE_FAILURES.inc()
                    if not failing:
                        log.warning(
                            "audit store unavailable: keeping events in memory",
                            extra={"error": str(exc), "events": len(self._pending)},
                        )
                    failing = True
                    if self._closing:
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry)
                    continue
                if failing:
                    log.info("audit store available again: writing queued events")
                failing, delay = False, self._retry
                written = {e.id for e in batch}
                while self._pending and self._pending[0].id in written:
                    self._pending.popleft()
                AUDIT_PENDING.set(len(self._pending))
            if self._closing:
                return
