"""The resilience layer's sense of time: ``now()`` (monotonic seconds), ``wall()`` (Unix
time, for state shared with other replicas) and ``sleep()``.

Every strategy takes a :class:`Clock`, so tests swap in :class:`ManualClock`: its
``sleep`` advances time at once (and yields to the event loop), so a test of a 30-second
breaker recovery or of a Retry-After of 7 seconds runs in microseconds and is
deterministic.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (only differences mean something)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (comparable across replicas)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told (:meth:`advance`) or when someone sleeps: a sleep
    advances the clock by its duration at once. ``slept`` records every sleep, so tests can
    assert the delays a strategy chose (e.g. that a Retry-After was honoured)."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


SYSTEM_CLOCK = SystemClock()
