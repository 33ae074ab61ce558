"""What a dependency's calls looked like *recently*: latency percentiles and error rate
over a sliding window, for the dependency map and the admin API. (The Prometheus
histograms count since start-up; a reader of the map wants "now".)

Each :class:`~agentfleet_runtime.resilience.pipeline.Pipeline` keeps one
:class:`RecentCalls`: the outcome and duration of its last calls within ``window``
seconds (at most ``capacity`` of them — at high rates the window is the last
``capacity`` calls). Calls the pipeline refused (breaker open, bulkhead full) are
counted apart: they say nothing about the dependency's own latency.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

DEFAULT_WINDOW_SECONDS: Final = 300.0
DEFAULT_CAPACITY: Final = 2048


@dataclass(frozen=True, slots=True)
class RecentSummary:
    window_seconds: float
    calls: int
    errors: int
    refused: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    last_call_age_seconds: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "window_seconds": self.window_seconds,
            "calls": self.calls,
            "errors": self.errors,
            "refused": self.refused,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "last_call_age_seconds": self.last_call_age_seconds,
        }


class RecentCalls:
    """A sliding window of call outcomes (not thread-safe: one event loop)."""

    __slots__ = ("_calls", "_clock", "_refused", "window")

    def __init__(
        self,
        window: float = DEFAULT_WINDOW_SECONDS,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._clock = clock
        #: (when, seconds, ok)
        self._calls: deque[tuple[float, float, bool]] = deque(maxlen=capacity)
        self._refused: deque[float] = deque(maxlen=capacity)

    def record(self, seconds: float, *, ok: bool) -> None:
        self._calls.append((self._clock(), seconds, ok))

    def refused(self) -> None:
        self._refused.append(self._clock())

    def summary(self) -> RecentSummary:
        now = self._clock()
        since = now - self.window
        calls = [(t, s, ok) for t, s, ok in self._calls if t >= since]
        durations = sorted(s for _, s, _ in calls)
        errors = sum(1 for _, _, ok in calls if not ok)
        return RecentSummary(
            window_seconds=self.window,
            calls=len(calls),
            errors=errors,
            refused=sum(1 for t in self._refused if t >= since),
            error_rate=round(errors / len(calls), 4) if calls else None,
            p50_ms=_percentile_ms(durations, 0.50),
            p95_ms=_percentile_ms(durations, 0.95),
            last_call_age_seconds=round(now - calls[-1][0], 3) if calls else None,
        )


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index] * 1000, 3)
