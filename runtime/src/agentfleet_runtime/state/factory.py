"""Pick the state backend from :class:`StateSettings`: every port, built together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver

from agentfleet_runtime.auth.apikeys import ApiKeyStore
from agentfleet_runtime.state.base import (
    AgentRecord,
    AgentStore,
    BreakerStateStore,
    EventLog,
    RateLimitStore,
    SessionStore,
    TurnQueue,
)
from agentfleet_runtime.state.idempotency import IdempotencyStore
from agentfleet_runtime.state.memory_checkpoint import memory_checkpointer
from agentfleet_runtime.state.quotas import QuotaStore
from agentfleet_runtime.state.runs import RunStore
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.tenants import TenantRecord, TenantStore

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.pipeline import Pipeline
    from agentfleet_runtime.state.audit_store import AuditStore
    from agentfleet_runtime.state.fallback import DegradedMode
    from agentfleet_runtime.state.instances import InstanceRegistry
    from agentfleet_runtime.state.mcp_registry import MCPServerRegistry

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
    #: Responses of creating POSTs, by ``Idempotency-Key`` (see :mod:`.idempotency`).
    idempotency: IdempotencyStore
    #: Counters and locks of the tenant quotas (tokens per day, sessions).
    quotas: QuotaStore
    #: Each turn's record (see :mod:`.runs`).
    runs: RunStore
    #: Audit events for GET /api/v1/audit (see :mod:`.audit_store`).
    audit: AuditStore
    #: MCP servers registered through the API (see :mod:`.mcp_registry`).
    mcp_servers: MCPServerRegistry
    #: The runtime replicas and their heartbeats (see :mod:`.instances`).
    instances: InstanceRegistry
    #: Receivers of cross-replica control messages (``{"type": "sweep"}``...).
    control_handlers: list[ControlHandler] = field(default_factory=list)
    _broadcast: Callable[[dict[str, Any]], Any] | None = None
    _ping: Callable[[], Any] | None = None
    #: Redis only: the stores' breaker, in-memory fallback and resync (state/fallback.py).
    degraded: DegradedMode | None = None
    _client: Any = None

    def attach_resilience(self, pipeline: Pipeline, *, enabled: Callable[[], bool]) -> None:
        """Put the state stores behind ``pipeline`` (the ``redis`` one: breaker, retries on
        a fresh connection, deadlines). ``enabled``: the ``fallback`` feature flag."""
        if self.degraded is not None:
            self.degraded.attach(pipeline, enabled=enabled, client=self._client)

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
        """Whether the store answers. In degraded mode the replica serves what it can
        from memory, so it stays ready (taking every replica out would serve nothing)."""
        if self._ping is None:
            return True
        if self.degraded is not None and self.degraded.enabled:
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
        from agentfleet_runtime.state.audit_store import MemoryAuditStore
        from agentfleet_runtime.state.idempotency import MemoryIdempotencyStore
        from agentfleet_runtime.state.instances import MemoryInstanceRegistry
        from agentfleet_runtime.state.mcp_registry import MemoryMCPServerRegistry
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
        from agentfleet_runtime.state.quotas import MemoryQuotaStore
        from agentfleet_runtime.state.runs import MemoryRunStore

        events = MemoryEventLog(settings.events_max_len)
        yield StateBackend(
            name="memory",
            agents=MemoryAgentStore(),
            sessions=MemorySessionStore(),
            events=events,
            turns=MemoryTurnQueue(events, idempotency_ttl=settings.idempotency_ttl_seconds),
            checkpointer=memory_checkpointer(),
            rate_limits=MemoryRateLimitStore(),
            breakers=MemoryBreakerStateStore(),
            api_keys=MemoryApiKeyStore(),
            tenants=MemoryTenantStore(),
            idempotency=MemoryIdempotencyStore(),
            quotas=MemoryQuotaStore(),
            runs=MemoryRunStore(),
            audit=MemoryAuditStore(
                settings.audit_max_events, retention_seconds=settings.audit_retention_seconds
            ),
            mcp_servers=MemoryMCPServerRegistry(),
            instances=MemoryInstanceRegistry(),
        )
        return

    from agentfleet_runtime.state.audit_store import RedisAuditStore
    from agentfleet_runtime.state.checkpoint import RedisCheckpointSaver
    from agentfleet_runtime.state.fallback import (
        CachedStore,
        DegradedMode,
        FallbackCheckpointSaver,
        FallbackEventLog,
        FallbackRateLimitStore,
        FallbackSessionStore,
        FallbackTurnQueue,
        GuardedStore,
    )
    from agentfleet_runtime.state.idempotency import RedisIdempotencyStore
    from agentfleet_runtime.state.instances import RedisInstanceRegistry
    from agentfleet_runtime.state.mcp_registry import RedisMCPServerRegistry
    from agentfleet_runtime.state.quotas import FailOpenQuotaStore, RedisQuotaStore
    from agentfleet_runtime.state.redis_client import Keys, ReplicaReads, connect
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
    from agentfleet_runtime.state.runs import RedisRunStore

    client = connect(settings)
    keys = Keys(settings.key_prefix, settings.tenant)
    ttl = settings.session_ttl_seconds
    backend: StateBackend | None = None

    def on_control(message: dict[str, Any]) -> None:
        if backend is not None:
            backend.on_control(message)

    hub = RedisEventHub(client, keys, on_control=on_control)
    # Behind the ``redis`` breaker, with the degraded mode's in-memory fallback (the
    # pipeline is attached by the resilience wiring: StateBackend.attach_resilience).
    mode = DegradedMode(
        fallback=settings.degraded_mode, cache_size=settings.degraded_cache_sessions
    )
    mode.replica = ReplicaReads.of(client)  # reads on a replica while the primary is down
    try:
        await client.ping()
        await hub.start()
        backend = StateBackend(
            name="redis",
            agents=CachedStore(RedisAgentStore(client, keys), mode, "agents", _agent_key),
            sessions=FallbackSessionStore(RedisSessionStore(client, keys, ttl_seconds=ttl), mode),
            events=FallbackEventLog(
                RedisEventLog(
                    client, keys, hub, max_events=settings.events_max_len, ttl_seconds=ttl
                ),
                mode,
                hub.fanout,
            ),
            turns=FallbackTurnQueue(
                RedisTurnQueue(
                    client,
                    keys,
                    idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
                    session_ttl_seconds=ttl,
                ),
                mode,
                idempotency_ttl=settings.idempotency_ttl_seconds,
            ),
            checkpointer=FallbackCheckpointSaver(
                RedisCheckpointSaver(client, keys, ttl_seconds=ttl), mode
            ),
            rate_limits=FallbackRateLimitStore(RedisRateLimitStore(client, keys), mode),
            # no fallback for breaker state: the breakers keep their own local state
            breakers=RedisBreakerStateStore(client, keys),
            api_keys=cast(
                ApiKeyStore, GuardedStore(RedisApiKeyStore(client, keys), mode, "api_keys")
            ),
            tenants=CachedStore(RedisTenantStore(client, keys), mode, "tenants", _tenant_key),
            # fail fast while Redis is down: a request with an Idempotency-Key gets a 503
            # state-unavailable (no dedupe, no run); quotas fail open (docs/resilience.md)
            idempotency=cast(
                IdempotencyStore,
                GuardedStore(RedisIdempotencyStore(client, keys), mode, "idempotency"),
            ),
            quotas=FailOpenQuotaStore(
                cast(QuotaStore, GuardedStore(RedisQuotaStore(client, keys), mode, "quotas"))
            ),
            # best effort (the runtime logs a failed write): fail fast while Redis is down
            runs=cast(
                RunStore, GuardedStore(RedisRunStore(client, keys, ttl_seconds=ttl), mode, "runs")
            ),
            # written in the background by the AuditWriter (kept in memory while it
            # fails); both fail fast behind the breaker while Redis is down
            audit=cast(
                "AuditStore",
                GuardedStore(
                    RedisAuditStore(
                        client,
                        keys,
                        max_events=settings.audit_max_events,
                        retention_seconds=settings.audit_retention_seconds,
                    ),
                    mode,
                    "audit",
                ),
            ),
            mcp_servers=cast(
                "MCPServerRegistry",
                GuardedStore(RedisMCPServerRegistry(client, keys), mode, "mcp_servers"),
            ),
            # fail fast while Redis is down: the heartbeat tries again
            instances=cast(
                "InstanceRegistry",
                GuardedStore(RedisInstanceRegistry(client, keys), mode, "instances"),
            ),
            _broadcast=hub.publish_control,
            _ping=client.ping,
            degraded=mode,
            _client=client,
        )
        log.info("state backend: redis", extra={"tenant": settings.tenant})
        yield backend
    finally:
        await mode.aclose()
        await hub.aclose()
        await client.aclose()


def _agent_key(record: AgentRecord) -> str:
    return record.key  # the store's key: a tenant's own agent is "<tenant>/<name>"


def _tenant_key(record: TenantRecord) -> str:
    return record.id
