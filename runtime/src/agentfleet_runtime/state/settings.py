"""``AGENTFLEET_STATE__*``: which state backend, and how it keeps things."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StateSettings(BaseModel):
    """Where sessions, checkpoints, events, queued turns, rate-limit counters and breaker
    state live. ``memory`` is one process's (development); ``redis`` is shared by every
    replica (production: pods are stateless)."""

    backend: Literal["memory", "redis"] = "memory"
    #: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS).
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: First part of every key: ``<key_prefix>:<tenant>:...``.
    key_prefix: str = Field(default="agentfleet", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Tenant namespace (e.g. the Kubernetes namespace): tenants never see each other's keys.
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]+$")
    #: A session (record, events, checkpoints, queue) expires after this long unused;
    #: ``0`` keeps sessions until deleted.
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    #: Events kept per session (older ones are trimmed; resuming across them reports a gap).
    events_max_len: int = Field(default=10_000, ge=10)
    #: How long an idempotency key is remembered.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    #: A replica runs a session's turns while it holds the session's lease; a replica that
    #: dies loses it after this long and another one recovers its in-flight turn.
    lease_seconds: float = Field(default=10.0, gt=0)
    #: How often each replica looks for queued work nobody holds a lease for.
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    #: How many times an in-flight turn is recovered (after a replica died or handed it
    #: over) before it is failed with reason ``recovery-exhausted``.
    max_turn_recoveries: int = Field(default=2, ge=0)
    #: Redis client: command timeout, connect timeout, retries on a fresh connection.
    socket_timeout_seconds: float = Field(default=5.0, gt=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    retries: int = Field(default=3, ge=0)
    max_connections: int = Field(default=64, ge=2)
    #: Redis unavailable (down, pool exhausted, breaker open): keep serving the sessions
    #: this replica knows from memory and write everything back once Redis answers
    #: (degraded mode, docs/resilience.md). ``false``: refuse with 503 instead.
    degraded_mode: bool = True
    #: Sessions whose record, last event id and latest checkpoint each replica remembers
    #: (what it needs to run their turns while Redis is unavailable).
    degraded_cache_sessions: int = Field(default=1024, ge=0)
    #: Audit events kept for ``GET /api/v1/audit``: per tenant on Redis (a stream capped
    #: at about this many), in all on memory (this process's ring buffer).
    audit_max_events: int = Field(default=10_000, ge=100)
    #: Audit events older than this are no longer listed (and trimmed on Redis);
    #: ``0``: only ``audit_max_events`` bounds them. The log stream is the durable record.
    audit_retention_seconds: int = Field(default=0, ge=0)
