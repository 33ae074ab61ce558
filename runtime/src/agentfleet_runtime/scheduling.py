"""Fair scheduling of turn execution on one replica.

A replica runs at most ``AGENTFLEET_SCHEDULING__MAX_CONCURRENT_TURNS`` turns at once (its
CPU, memory and model connections are finite). When more turns are ready than that, they
wait — and are admitted **round-robin across tenants**, not first come first served: each
tenant has its own queue, and every slot that frees goes to the next tenant in the ring
that has a turn waiting. A tenant that queued 200 turns therefore delays another tenant's
turn by at most one of its own, not by all 200.

Turns are admitted per turn, not per unit of work (deficit round-robin by token cost
would need the cost before the turn runs). Tenant quotas (``max_concurrent_turns``,
``tokens_per_day``: :mod:`agentfleet_runtime.tenants`) bound what a tenant may submit at
all; this class only orders what was accepted. It is per replica and in memory: the
dispatcher's per-session leases already spread sessions over replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from prometheus_client import Gauge, Histogram
from pydantic import BaseModel, Field

TURNS_WAITING = Gauge(
    "agentfleet_turns_waiting",
    "Turns ready to run but waiting for an execution slot of this replica, per tenant",
    ["tenant"],
)
TURNS_EXECUTING = Gauge(
    "agentfleet_turns_executing", "Turns holding an execution slot of this replica"
)
TURN_WAIT_SECONDS = Histogram(
    "agentfleet_turn_wait_seconds",
    "Time a turn waited for an execution slot (fair scheduler)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class SchedulingSettings(BaseModel):
    """``AGENTFLEET_SCHEDULING__*``: how many turns one replica executes at once."""

    #: Turns executing at once on this replica; more wait and are admitted round-robin
    #: across tenants. ``0``: no limit (and no queueing).
    max_concurrent_turns: int = Field(default=64, ge=0)


class FairScheduler:
    """At most ``capacity`` holders of :meth:`slot` at once (``None`` or 0: unlimited);
    waiters are admitted round-robin over tenants, in arrival order within a tenant."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity or None
        self._running = 0
        #: tenant → its waiters, in the order the ring serves tenants
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def running(self) -> int:
        return self._running

    def waiting(self, tenant: str | None = None) -> int:
        """Turns waiting for a slot (of ``tenant``, or of all tenants)."""
        if tenant is not None:
            return len(self._queues.get(tenant, ()))
        return sum(len(queue) for queue in self._queues.values())

    @contextlib.asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold one execution slot for the block, waiting (fairly) until one is free."""
        started = time.perf_counter()
        if self.capacity is None or (self._running < self.capacity and not self._queues):
            self._running += 1
        else:
            await self._wait(tenant)
        TURN_WAIT_SECONDS.observe(time.perf_counter() - started)
        TURNS_EXECUTING.inc()
        try:
            yield
        finally:
            TURNS_EXECUTING.dec()
            self._release()

    async def _wait(self, tenant: str) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(tenant)
        if queue is None:  # a tenant new to the ring joins at its end
            queue = self._queues[tenant] = deque()
        queue.append(waiter)
        TURNS_WAITING.labels(tenant).inc()
        try:
            await waiter  # _release counted us as running when it set the result
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted as we were cancelled: pass the slot on
            else:
                self._forget(tenant, waiter)
            raise

    def _forget(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(tenant)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            TURNS_WAITING.labels(tenant).dec()
            if not queue:
                del self._queues[tenant]

    def _release(self) -> None:
        self._running -= 1
        while self._queues and (self.capacity is None or self._running < self.capacity):
            tenant, queue = next(iter(self._queues.items()))
            waiter = queue.popleft()
            TURNS_WAITING.labels(tenant).dec()
            if queue:
                self._queues.move_to_end(tenant)  # its next turn waits for the others
            else:
                del self._queues[tenant]
            if not waiter.done():
                self._running += 1
                waiter.set_result(None)
