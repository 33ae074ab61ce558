"""Shared token buckets on Redis; while Redis is unavailable (or its breaker refuses)
each replica uses its own buckets: limits per replica instead of shared (documented in
docs/resilience.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentfleet_runtime.state.base import RateDecision
from agentfleet_runtime.state.degraded.mode import DegradedMode, unavailable
from agentfleet_runtime.state.memory import MemoryRateLimitStore

if TYPE_CHECKING:
    from agentfleet_runtime.state.redis_stores import RedisRateLimitStore

__all__ = ["FallbackRateLimitStore"]


class FallbackRateLimitStore:
    """Shared token buckets; while Redis is unavailable (or its breaker refuses) each
    replica uses its own buckets (limits per replica instead of shared: documented)."""

    def __init__(self, inner: RedisRateLimitStore, mode: DegradedMode) -> None:
        self._inner = inner
        self._mode = mode
        self._local = MemoryRateLimitStore()

    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        pipeline = self._mode.pipeline
        if pipeline is None or not pipeline.refusing:
            # not through the pipeline: the resilience layer's own limiters use this store
            try:
                return await self._inner.acquire(key, rate=rate, burst=burst, cost=cost)
            except Exception as exc:
                if not unavailable(exc) or not self._mode.enabled:
                    raise
        return await self._local.acquire(key, rate=rate, burst=burst, cost=cost)

    async def reset(self, key: str) -> None:
        await self._local.reset(key)
        await self._inner.reset(key)
