"""A deduplicating work queue with a fixed pool of workers: the controller-runtime model.

kopf watches the resources and calls our (thin) event handlers, which only add keys here.
The queue guarantees:

* a key waiting in the queue is there once, however many events named it (a burst of
  events for one Agent is one reconcile);
* a key is reconciled by one worker at a time; an event arriving during its reconcile
  queues it again afterwards (level-triggered: the reconcile always reads the latest state);
* a reconcile may ask to run again after a delay (a missing reference, a rollout);
  failures back off exponentially per key (1 s doubling to 5 min), reset on success;
* at most ``workers`` reconciles run at once, so 1,000 Agents applied at once do not open
  1,000 concurrent API calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentfleet_operator.observability import OperatorMetrics

logger = logging.getLogger("agentfleet.operator.queue")

MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True, order=True)
class Key:
    """What to reconcile: a resource kind and the object's namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


#: A reconcile: returns seconds after which to run again, or None.
Reconcile = Callable[[Key], Awaitable[float | None]]


class WorkQueue:
    def __init__(
        self, reconcile: Reconcile, *, workers: int, metrics: OperatorMetrics | None = None
    ) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._metrics = metrics
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._delayed: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    # --- adding ---------------------------------------------------------------------------

    def add(self, key: Key, delay: float = 0.0) -> None:
        """Reconcile ``key`` (after ``delay`` seconds; the earliest request wins)."""
        if delay > 0:
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            current = self._delayed.get(key)
            if current is not None:
                if current[0] <= due:
                    return
                current[1].cancel()
            self._delayed[key] = (due, loop.call_at(due, self._fire, key))
            return
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._idle.clear()
        self._queue.put_nowait(key)
        self._gauge()

    def _fire(self, key: Key) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def forget(self, key: Key) -> None:
        """Drop delayed retries and failure counts of a key (its object is gone)."""
        delayed = self._delayed.pop(key, None)
        if delayed is not None:
            delayed[1].cancel()
        self._failures.pop(key, None)

    # --- running --------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._work(), name=f"agentfleet-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._active)

    async def wait_idle(self) -> None:
        """Until nothing is queued or running (delayed retries do not count)."""
        await self._idle.wait()

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(len(self._pending))

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            self._active.add(key)
            self._gauge()
            try:
                delay = await self._run(key)
            except Exception:  # never lose a worker, whatever broke
                logger.exception(f"the worker failed on {key}")
                delay = MAX_BACKOFF_SECONDS
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif delay is not None:
                self.add(key, delay)
            if not self._pending and not self._active:
                self._idle.set()

    async def _run(self, key: Key) -> float | None:
        started = time.monotonic()
        result = "success"
        try:
            delay = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1))
            result = "error"
            if self._metrics is not None:
                self._metrics.errors.labels(kind=key.kind, error=type(exc).__name__).inc()
            logger.warning(
                f"reconcile of {key} failed ({type(exc).__name__}: {exc}); retrying in {delay:g}s",
                extra={"object": str(key)},
                exc_info=not isinstance(exc, OSError | LookupError | ValueError),
            )
        else:
            self._failures.pop(key, None)
            if delay is not None:
                result = "requeued"
        finally:
            if self._metrics is not None:
                self._metrics.duration.labels(kind=key.kind).observe(time.monotonic() - started)
        if self._metrics is not None:
            self._metrics.reconciles.labels(kind=key.kind, result=result).inc()
        return delay
