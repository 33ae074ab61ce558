"""Registering this replica: every ``interval`` seconds it writes its
:class:`~agentfleet_runtime.state.instances.InstanceRecord` (ready or not and why, the
agents and config digest it runs, degraded mode, refusing breakers) into the state
backend, and removes it on a clean shutdown. A replica that dies stops writing: its
record turns *stale* after ``ttl`` (3 intervals) and is pruned later.

While the state backend cannot be written the heartbeat keeps trying on its interval;
``agentfleet_discovery_source_up{source="instances"}`` says whether the last write got
through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from agentfleet_runtime.observability import metrics
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.instances import InstanceRecord, InstanceRegistry

log = logging.getLogger(__name__)

SOURCE: Final = "instances"
#: A record is stale after this many missed heartbeats.
TTL_INTERVALS: Final = 3

Describe = Callable[[], Awaitable[InstanceRecord]]


class InstanceHeartbeat:
    """Writes this replica's record every ``interval`` seconds."""

    def __init__(self, registry: InstanceRegistry, describe: Describe, *, interval: float) -> None:
        self._registry = registry
        self._describe = describe
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._wake = asyncio.Event()
        self.last_success: float | None = None

    @property
    def ttl_seconds(self) -> float:
        return self.interval * TTL_INTERVALS

    async def beat(self) -> bool:
        """Write the record once; whether it got through."""
        try:
            await self._registry.put(await self._describe())
        except Exception as exc:
            if not self._failing:
                log.warning(
                    "cannot register this replica in the state backend; retrying",
                    extra={"source": SOURCE, "error": str(exc)},
                )
            self._failing = True
            metrics.DISCOVERY_SOURCE_UP.labels(SOURCE).set(0)
            return False
        if self._failing:
            log.info("replica registered again", extra={"source": SOURCE})
        self._failing = False
        self.last_success = time.time()
        metrics.DISCOVERY_SOURCE_UP.labels(SOURCE).set(1)
        metrics.DISCOVERY_LAST_SUCCESS.labels(SOURCE).set(self.last_success)
        return True

    async def list(self) -> list[InstanceRecord]:
        """Every registered replica, with the ``agentfleet_instances`` gauge updated."""
        records = await self._registry.list()
        now = utcnow()
        counts = {"ready": 0, "not_ready": 0, "stale": 0}
        for record in records:
            counts[record.state(now)] += 1
        for state, count in counts.items():
            metrics.INSTANCES.labels(state).set(count)
        return records

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    def nudge(self) -> None:
        """Write the record now rather than at the next interval (readiness changed)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def aclose(self, instance_id: str | None = None) -> None:
        """Stop; with ``instance_id``, deregister (a clean shutdown: not left stale)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if instance_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._registry.remove(instance_id), 2.0)
