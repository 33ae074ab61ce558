"""Retry budget (as in Finagle and gRPC): retries may be at most ``ratio`` of the calls of
the last ``window_seconds`` (plus ``min_retries_per_second`` so that a quiet dependency can
still be retried). When a dependency fails for everyone, retries cannot multiply the load
it gets beyond ``1 + ratio`` times; the refused retry raises
:class:`~agentfleet_runtime.errors.BudgetExhaustedError`.

Counts are kept in one-second buckets on a ring (constant memory, O(1) per call).
"""

from __future__ import annotations

import math

from agentfleet_crds.v1alpha1.resiliencepolicy import RetryBudgetOptions
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]


class RetryBudget:
    __slots__ = ("_calls", "_clock", "_retries", "_second", "_size", "options")

    def __init__(self, options: RetryBudgetOptions | None = None, *, clock: Clock = SYSTEM_CLOCK):
        self._clock = clock
        self.options = options or RetryBudgetOptions()
        self._size = max(1, math.ceil(self.options.window_seconds))
        self._calls = [0] * self._size
        self._retries = [0] * self._size
        self._second = math.floor(clock.now())

    def configure(self, options: RetryBudgetOptions) -> None:
        if math.ceil(options.window_seconds) != self._size:
            self._size = max(1, math.ceil(options.window_seconds))
            self._calls = [0] * self._size
            self._retries = [0] * self._size
        self.options = options

    def _roll(self) -> int:
        second = math.floor(self._clock.now())
        gap = second - self._second
        if gap > 0:
            for step in range(1, min(gap, self._size) + 1):
                index = (self._second + step) % self._size
                self._calls[index] = 0
                self._retries[index] = 0
            self._second = second
        return second % self._size

    def record_call(self) -> None:
        """A call (first attempt) was made."""
        self._calls[self._roll()] += 1

    def allowance(self) -> float:
        """Retries the window allows in total."""
        options = self.options
        return options.min_retries_per_second * options.window_seconds + options.ratio * sum(
            self._calls
        )

    def try_acquire(self) -> bool:
        """Take a retry from the budget if it has one."""
        index = self._roll()
        if sum(self._retries) + 1 > self.allowance():
            return False
        self._retries[index] += 1
        return True

    def snapshot(self) -> dict[str, float]:
        self._roll()
        return {
            "calls": sum(self._calls),
            "retries": sum(self._retries),
            "allowance": round(self.allowance(), 3),
        }
