"""Bulkhead: at most ``max_concurrent`` calls in flight to a dependency; a caller past it
waits (first come, first served) up to ``max_wait_seconds`` for a slot, then is refused
with :class:`~agentfleet_runtime.errors.BulkheadFullError`. One slow dependency thus
cannot take every connection, task and worker of the process with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from agentfleet_crds.v1alpha1.resiliencepolicy import BulkheadOptions
from agentfleet_runtime.errors import BulkheadFullError
from agentfleet_runtime.observability import metrics

__all__ = ["Bulkhead"]


class Bulkhead:
    def __init__(self, name: str, options: BulkheadOptions | None = None) -> None:
        self.name = name
        options = options or BulkheadOptions()
        self.max_concurrent = options.max_concurrent
        self.max_wait = options.max_wait_seconds
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Read at scrape time: no metric update on the call's path.
        metrics.BULKHEAD_IN_FLIGHT.labels(name).set_function(lambda: self._in_flight)

    def configure(self, options: BulkheadOptions) -> None:
        self.max_concurrent = options.max_concurrent
        self.max_wait = options.max_wait_seconds
        self._hand_over()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot (waiting up to ``max_wait``), or raise :class:`BulkheadFullError`."""
        if self._in_flight < self.max_concurrent and not self._waiters:
            self._in_flight += 1
            return
        if self.max_wait <= 0:
            raise self._full()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter
        except TimeoutError:
            if not (waiter.done() and not waiter.cancelled()):
                raise self._full() from None
            # the slot was handed over just as the wait ran out: take it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over, then cancelled
                self.release()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def release(self) -> None:
        self._in_flight -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters and self._in_flight < self.max_concurrent:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def _full(self) -> BulkheadFullError:
        return BulkheadFullError(
            f"bulkhead {self.name} is full: {self.max_concurrent} calls in flight "
            f"(waited up to {self.max_wait:g}s)",
            dependency=self.name,
        )
