"""Wiring the resilience layer into the runtime (called from the app's lifespan): the
registry (sharing breaker state and rate limits through the state backend when it is
Redis), the dead-letter store and recorder, tracing, and the flags-file watcher."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from agentfleet_runtime.deadletters import (
    DeadLetterRecorder,
    DeadLetterStore,
    MemoryDeadLetterStore,
)
from agentfleet_runtime.observability import tracing
from agentfleet_runtime.resilience.registry import ResilienceRegistry

if TYPE_CHECKING:
    from agentfleet_runtime.agent.service import AgentService
    from agentfleet_runtime.config import RuntimeSettings
    from agentfleet_runtime.state.factory import StateBackend

__all__ = ["open_resilience"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_resilience(
    settings: RuntimeSettings, state: StateBackend, service: AgentService, app_state: Any
) -> AsyncIterator[ResilienceRegistry]:
    options = settings.resilience
    shared = options.breaker_sync == "shared" or (
        options.breaker_sync == "auto" and state.name == "redis"
    )
    registry = ResilienceRegistry(
        options,
        environment=settings.environment.value,
        breaker_store=state.breakers if shared else None,
        rate_store=state.rate_limits,
    )
    store: DeadLetterStore
    if state.name == "redis":
        from agentfleet_runtime.deadletters.redis import RedisDeadLetterStore
        from agentfleet_runtime.resilience.redis import connect, redis_pipeline
        from agentfleet_runtime.state.redis_client import connect as connect_state

        # the state stores behind the same ``redis`` breaker, with their in-memory fallback
        state.attach_resilience(redis_pipeline(registry), enabled=lambda: registry.flags.fallback)
        store = RedisDeadLetterStore(
            # Sentinel: the primary's client (no driver retries either: the pipeline's)
            connect_state(settings.state, retries=0, max_connections=16)
            if settings.state.sentinel.enabled
            else connect(settings.state.redis_url),
            redis_pipeline(registry),
            prefix=settings.state.key_prefix,
            tenant=settings.state.tenant,
            max_letters=options.dead_letters_max,
            owns_client=True,
        )
    else:
        store = MemoryDeadLetterStore(options.dead_letters_max)
    recorder = DeadLetterRecorder(store, enabled=lambda: registry.flags.dead_letters)
    service.resilience = registry
    service.dead_letters = recorder
    service.tool_failures_per_turn = options.tool_failures_per_turn
    app_state.resilience = registry
    app_state.dead_letters = recorder
    traced = settings.observability.tracing and not tracing.enabled()
    if traced:
        tracing.configure_tracing(settings.observability)
    registry.start()
    log.info(
        "resilience: breakers %s, rate limits %s, dead letters in %s",
        "shared" if shared else "local",
        options.rate_limit_scope,
        state.name,
    )
    try:
        yield registry
    finally:
        await registry.aclose()
        await store.aclose()
        if traced:
            tracing.shutdown_tracing()
