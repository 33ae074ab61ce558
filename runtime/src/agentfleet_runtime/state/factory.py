"""Pick the state backend from :class:`StateSettings`: every port, built together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agentfleet_runtime.auth.apikeys import ApiKeyStore
from agentfleet_runtime.state.base import (
    AgentStore,
    BreakerStateStore,
    EventLog,
    RateLimitStore,
    SessionStore,
    TurnQueue,
)
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.tenants import TenantStore

log = logging.getLogger(__name__)

ControlHandler = Callable[[dict[str, Any]], None]


@dataclass
class StateBackend:
    """The state ports of one runtime process."""

    name: str
    agents: AgentStore
    sessions: SessionStore
    events: EventLog
    turns: TurnQueue
    checkpointer: BaseCheckpointSaver[Any]
    rate_limits: RateLimitStore
    breakers: BreakerStateStore
    api_keys: ApiKeyStore
    tenants: TenantStore
    #: Receivers of cross-replica control messages (``{"type": "sweep"}``...).
    control_handlers: list[ControlHandler] = field(default_factory=list)
    _broadcast: Callable[[dict[str, Any]], Any] | None = None
    _ping: Callable[[], Any] | None = None

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Tell every replica (memory: this process) something."""
        if self._broadcast is None:
            self.on_control(message)
        else:
            await self._broadcast(message)

    def on_control(self, message: dict[str, Any]) -> None:
        for handler in list(self.control_handlers):
            handler(message)

    async def healthy(self) -> bool:
        if self._ping is None:
            return True
        try:
            await self._ping()
        except Exception:
            return False
        return True


@contextlib.asynccontextmanager
async def open_state(settings: StateSettings) -> AsyncIterator[StateBackend]:
    """The configured backend, open for the block (connections closed afterwards)."""
    if settings.backend == "memory":
        from agentfleet_runtime.state.memory import (
            MemoryAgentStore,
            MemoryApiKeyStore,
            MemoryBreakerStateStore,
            MemoryEventLog,
            MemoryRateLimitStore,
            MemorySessionStore,
            MemoryTenantStore,
            MemoryTurnQueue,
        )

        events = MemoryEventLog(settings.events_max_len)
        yield StateBackend(
            name="memory",
            agents=MemoryAgentStore(),
            sessions=MemorySessionStore(),
            events=events,
            turns=MemoryTurnQueue(events, idempotency_ttl=settings.idempotency_ttl_seconds),
            checkpointer=InMemorySaver(),
            rate_limits=MemoryRateLimitStore(),
            breakers=MemoryBreakerStateStore(),
            api_keys=MemoryApiKeyStore(),
            tenants=MemoryTenantStore(),
        )
        return

    from agentfleet_runtime.state.checkpoint import RedisCheckpointSaver
    from agentfleet_runtime.state.redis_client import Keys, connect
    from agentfleet_runtime.state.redis_events import RedisEventHub, RedisEventLog
    from agentfleet_runtime.state.redis_stores import (
        RedisAgentStore,
        RedisApiKeyStore,
        RedisBreakerStateStore,
        RedisRateLimitStore,
        RedisSessionStore,
        RedisTenantStore,
    )
    from agentfleet_runtime.state.redis_turns import RedisTurnQueue

    client = connect(settings)
    keys = Keys(settings.key_prefix, settings.tenant)
    ttl = settings.session_ttl_seconds
    backend: StateBackend | None = None

    def on_control(message: dict[str, Any]) -> None:
        if backend is not None:
            backend.on_control(message)

    hub = RedisEventHub(client, keys, on_control=on_control)
    try:
        await client.ping()
        await hub.start()
        backend = StateBackend(
            name="redis",
            agents=RedisAgentStore(client, keys),
            sessions=RedisSessionStore(client, keys, ttl_seconds=ttl),
            events=RedisEventLog(
                client, keys, hub, max_events=settings.events_max_len, ttl_seconds=ttl
            ),
            turns=RedisTurnQueue(
                client,
                keys,
                idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
                session_ttl_seconds=ttl,
            ),
            checkpointer=RedisCheckpointSaver(client, keys, ttl_seconds=ttl),
            rate_limits=RedisRateLimitStore(client, keys),
            breakers=RedisBreakerStateStore(client, keys),
            api_keys=RedisApiKeyStore(client, keys),
            tenants=RedisTenantStore(client, keys),
            _broadcast=hub.publish_control,
            _ping=client.ping,
        )
        log.info("state backend: redis", extra={"tenant": settings.tenant})
        yield backend
    finally:
        await hub.aclose()
        await client.aclose()
