"""``ResilienceRegistry``: hands out named instances — one pipeline, breaker, bulkhead and
retry budget per dependency (``llm:openai/gpt-4.1``, ``mcp:github``, ``redis``...), one
rate limiter per rate-limit key (a model provider: every model of a provider shares its
limits) — and owns the feature flags every pipeline reads.

Asking again for a dependency returns the same instances, reconfigured with the options
given (a reloaded ResiliencePolicy takes effect without losing breaker state). When two
agents configure the same dependency differently, the last one loaded wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec, ServiceCategory
from agentfleet_runtime.errors import NotFoundError
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.resilience.breaker import CircuitBreaker
from agentfleet_runtime.resilience.budget import RetryBudget
from agentfleet_runtime.resilience.bulkhead import Bulkhead
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock
from agentfleet_runtime.resilience.events import EventBus, metrics_and_logs
from agentfleet_runtime.resilience.options import (
    FeatureFlags,
    PipelineOptions,
    ResilienceSettings,
    category_policy,
    load_flags_file,
)
from agentfleet_runtime.resilience.pipeline import Pipeline
from agentfleet_runtime.resilience.ratelimit import RateLimiter
from agentfleet_runtime.state.base import BreakerStateStore, RateLimitStore

__all__ = ["ResilienceRegistry"]

log = logging.getLogger(__name__)


class ResilienceRegistry:
    def __init__(
        self,
        settings: ResilienceSettings | None = None,
        *,
        environment: str = "production",
        clock: Clock = SYSTEM_CLOCK,
        breaker_store: BreakerStateStore | None = None,
        rate_store: RateLimitStore | None = None,
        bus: EventBus | None = None,
        rand: Callable[[], float] = random.random,
        rate_period: float = 60.0,
    ) -> None:
        """``breaker_store``: share breaker state (``None``: local); ``rate_store``: share
        rate limits (used when ``settings.rate_limit_scope`` is ``shared``)."""
        self.settings = settings or ResilienceSettings()
        self.environment = environment
        self.clock = clock
        self.bus = bus or EventBus()
        if bus is None:
            self.bus.subscribe(metrics_and_logs)
        self.flags = self.settings.flags.model_copy()
        self._breaker_store = breaker_store
        self._rate_store = rate_store if self.settings.rate_limit_scope == "shared" else None
        self._rand = rand
        self._rate_period = rate_period
        self._pipelines: dict[str, Pipeline] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._flags_mtime: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._publish_flags()

    # -- instances ------------------------------------------------------------------------

    def pipeline(
        self,
        name: str,
        category: ServiceCategory | str,
        policy: ResiliencePolicySpec | None = None,
        *,
        rate_limit_key: str | None = None,
        mesh_retries: bool = False,
        idempotent: bool = True,
    ) -> Pipeline:
        """The pipeline of dependency ``name`` with the effective options of ``category``
        (environment defaults + what ``policy`` sets). ``rate_limit_key`` names the rate
        limiter it shares (``None``: its own name)."""
        options = PipelineOptions(
            category=ServiceCategory(category),
            policy=category_policy(category, policy, environment=self.environment),
            mesh_retries=mesh_retries,
            idempotent=idempotent,
        )
        existing = self._pipelines.get(name)
        if existing is not None:
            if existing.options != options:
                existing.configure(options)
            return existing
        limiter = self.rate_limiter(rate_limit_key or name)
        pipeline = Pipeline(
            name,
            options,
            breaker=self.breaker(name),
            bulkhead=Bulkhead(name, options.policy.bulkhead),
            budget=RetryBudget(options.policy.retry_budget, clock=self.clock),
            limiter=limiter,
            flags=self.flags,
            clock=self.clock,
            bus=self.bus,
            rand=self._rand,
        )
        self._pipelines[name] = pipeline
        return pipeline

    def breaker(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = CircuitBreaker(
                name,
                clock=self.clock,
                bus=self.bus,
                shared=self._breaker_store,
                sync_interval=self.settings.breaker_sync_interval_seconds,
            )
            metrics.BREAKER_STATE.labels(name).set(0)
        return breaker

    def rate_limiter(self, key: str) -> RateLimiter:
        from agentfleet_crds.v1alpha1.resiliencepolicy import RateLimitOptions

        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = RateLimiter(
                key,
                RateLimitOptions(),
                max_wait=self.settings.rate_limit_max_wait_seconds,
                period=self._rate_period,
                clock=self.clock,
                shared=self._rate_store,
            )
        return limiter

    def get_pipeline(self, name: str) -> Pipeline | None:
        return self._pipelines.get(name)

    def find_breaker(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            raise NotFoundError(f"no circuit breaker named {name!r}", breaker=name)
        return breaker

    def breakers(self) -> list[CircuitBreaker]:
        return [self._breakers[name] for name in sorted(self._breakers)]

    def pipelines(self) -> list[Pipeline]:
        return [self._pipelines[name] for name in sorted(self._pipelines)]

    def health(self) -> dict[str, Any]:
        """``healthy`` (every breaker closed), ``degraded`` (some refuse calls) or
        ``unavailable`` (every model dependency refuses calls)."""
        refusing = [b.name for b in self._breakers.values() if b.refusing]
        # A model's own breakers; an endpoint's (``llm:<model>@<endpoint>``) only degrade.
        llm = [name for name in self._breakers if name.startswith("llm:") and "@" not in name]
        if llm and all(name in refusing for name in llm):
            status = "unavailable"
        elif refusing:
            status = "degraded"
        else:
            status = "healthy"
        return {"status": status, "refusing": sorted(refusing)}

    # -- feature flags --------------------------------------------------------------------

    def set_flags(self, **changes: bool) -> FeatureFlags:
        """Change flags in place (every pipeline sees the change on its next call)."""
        for name, value in changes.items():
            if name not in FeatureFlags.model_fields:
                raise ValueError(f"unknown feature flag {name!r}")
            setattr(self.flags, name, value)
        if changes:
            log.warning("resilience feature flags changed: %s", changes, extra={"flags": changes})
        self._publish_flags()
        return self.flags

    def reload_flags_file(self) -> bool:
        """Re-read the flags file if it changed; answers whether flags were applied."""
        path = self.settings.flags_file
        if path is None:
            return False
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._flags_mtime:
            return False
        self._flags_mtime = mtime
        try:
            loaded = load_flags_file(path, self.settings.flags)
        except Exception as exc:
            log.error("cannot read resilience flags file %s: %s", path, exc)
            return False
        self.set_flags(**loaded.model_dump())
        return True

    def start(self) -> None:
        """Start watching the flags file (when configured)."""
        if self.settings.flags_file is not None and self._watcher is None:
            self.reload_flags_file()
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flags_poll_seconds)
            self.reload_flags_file()

    def _publish_flags(self) -> None:
        for name, value in self.flags.model_dump().items():
            metrics.FEATURE_FLAG.labels(name).set(1 if value else 0)

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for breaker in self._breakers.values():
            await breaker.aclose()
