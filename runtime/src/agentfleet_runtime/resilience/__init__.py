"""The resilience layer: one pipeline per dependency (retries with tenacity and a retry
budget, pybreaker circuit breakers, client-side rate limits, bulkheads, time limits),
fallbacks across models, events/metrics/logs/traces, feature flags, and a registry that
hands out named instances. Start at :mod:`.pipeline` (the order) and docs/resilience.md.
"""

from agentfleet_runtime.resilience.breaker import CircuitBreaker
from agentfleet_runtime.resilience.budget import RetryBudget
from agentfleet_runtime.resilience.bulkhead import Bulkhead
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from agentfleet_runtime.resilience.events import EventBus
from agentfleet_runtime.resilience.options import (
    FeatureFlags,
    PipelineOptions,
    ResilienceSettings,
    category_policy,
    environment_defaults,
)
from agentfleet_runtime.resilience.pipeline import Attempt, Pipeline
from agentfleet_runtime.resilience.ratelimit import RateLimiter
from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = [
    "SYSTEM_CLOCK",
    "Attempt",
    "Bulkhead",
    "CircuitBreaker",
    "Clock",
    "EventBus",
    "FeatureFlags",
    "ManualClock",
    "Pipeline",
    "PipelineOptions",
    "RateLimiter",
    "ResilienceRegistry",
    "ResilienceSettings",
    "RetryBudget",
    "SystemClock",
    "category_policy",
    "environment_defaults",
]
