"""Client-side rate limiting of outbound calls: requests per minute and, for model
providers, tokens per minute.

* ``local`` (default): aiolimiter's leaky buckets in this process — asyncio-native, fair
  (waiters are served in order), no I/O. ``period`` is 60 s; tests shrink it.
* ``shared``: one token bucket for every replica, in the state backend
  (:class:`~agentfleet_runtime.state.base.RateLimitStore`, a Lua script on Redis); a
  refused permit is retried after the bucket's own ``retry_after``. When the store is
  unreachable the local buckets take over (in-memory fallback).

A caller waits at most ``max_wait`` seconds for its permits, then the call is refused with
:class:`~agentfleet_runtime.errors.RateLimitExceededError` (nothing is sent).

Tokens are only known after a call: a call takes an estimate of its prompt's tokens up
front (4 characters a token), and what the provider reports beyond the estimate is taken
from the next call's permit (``record_usage``), so the budget is honoured over time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiolimiter import AsyncLimiter

from agentfleet_crds.v1alpha1.resiliencepolicy import RateLimitOptions
from agentfleet_runtime.errors import RateLimitExceededError
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock
from agentfleet_runtime.state.base import RateLimitStore

__all__ = ["RateLimiter", "estimate_tokens"]

log = logging.getLogger(__name__)


def estimate_tokens(characters: int) -> int:
    """A rough token count for ``characters`` of text (about 4 characters a token)."""
    return characters // 4 + 1


class RateLimiter:
    def __init__(
        self,
        name: str,
        options: RateLimitOptions,
        *,
        max_wait: float = 30.0,
        period: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        shared: RateLimitStore | None = None,
    ) -> None:
        self.name = name
        self.max_wait = max_wait
        self._period = period
        self._clock = clock
        self._shared = shared
        self._debt = 0
        self._shared_down = False
        self.configure(options)

    def configure(self, options: RateLimitOptions) -> None:
        rpm, tpm = options.requests_per_minute, options.tokens_per_minute
        current = getattr(self, "options", None)
        if current is not None and current == options:
            return
        self.options = options
        self._requests = AsyncLimiter(rpm, self._period) if rpm else None
        self._tokens = AsyncLimiter(tpm, self._period) if tpm else None

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    def record_usage(self, used: int, estimated: int) -> None:
        """Tokens a call used beyond its estimate are charged to the next call."""
        if self._tokens is not None and used > estimated:
            self._debt += used - estimated

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a request permit (and ``tokens``), or raise
        :class:`RateLimitExceededError` after ``max_wait``."""
        started = time.perf_counter()
        amount = 0
        if self._tokens is not None:
            amount = min(tokens + self._debt, int(self._tokens.max_rate))
        try:
            async with asyncio.timeout(self.max_wait):
                shared = self._shared is not None and not self._shared_down
                if shared and await self._acquire_shared(amount):
                    self._debt = 0
                    return
                if self._requests is not None:
                    await self._requests.acquire()
                if self._tokens is not None and amount:
                    await self._tokens.acquire(amount)
                    self._debt = 0
        except TimeoutError:
            raise RateLimitExceededError(
                f"{self.name}: no rate-limit permit within {self.max_wait:g}s ({self._describe()})",
                dependency=self.name,
            ) from None
        finally:
            waited = time.perf_counter() - started
            if waited > 0.001:
                metrics.RATE_LIMIT_WAIT_SECONDS.labels(self.name, "local").observe(waited)

    async def _acquire_shared(self, tokens: int) -> bool:
        """Permits from the shared buckets; ``False`` when the store is unreachable (the
        caller then uses the local buckets)."""
        assert self._shared is not None
        options = self.options
        try:
            if options.requests_per_minute:
                await self._take_shared("requests", options.requests_per_minute, 1)
            if options.tokens_per_minute and tokens:
                await self._take_shared("tokens", options.tokens_per_minute, tokens)
        except (TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.warning(
                "rate limiter %s: shared buckets unreachable, limiting locally (%s)",
                self.name,
                exc,
                extra={"limiter": self.name},
            )
            self._shared_down = True
            asyncio.get_running_loop().call_later(5.0, self._retry_shared)
            return False
        return True

    def _retry_shared(self) -> None:
        self._shared_down = False

    async def _take_shared(self, kind: str, per_minute: int, cost: int) -> None:
        assert self._shared is not None
        rate = per_minute / self._period
        while True:
            decision = await self._shared.acquire(
                f"{self.name}:{kind}", rate=rate, burst=per_minute, cost=cost
            )
            if decision.allowed:
                return
            await self._clock.sleep(min(max(decision.retry_after, 0.001), self.max_wait))

    def _describe(self) -> str:
        parts = []
        if self.options.requests_per_minute:
            parts.append(f"{self.options.requests_per_minute} requests/min")
        if self.options.tokens_per_minute:
            parts.append(f"{self.options.tokens_per_minute} tokens/min")
        return ", ".join(parts) or "unlimited"
