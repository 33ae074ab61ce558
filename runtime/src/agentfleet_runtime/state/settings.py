"""``AGENTFLEET_STATE__*``: which state backend, and how it keeps things."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode


class SentinelSettings(BaseModel):
    """``AGENTFLEET_STATE__SENTINEL__*``: find the Redis primary through Redis Sentinel
    (redis-py's ``Sentinel``: ``master_for`` / ``slave_for``) instead of ``redis_url``.
    Sentinel promotes a replica when the primary dies; the client asks the Sentinels again
    and writes go to the new primary. Reads fall back to a replica while the primary is
    unreachable (docs/state-and-realtime.md#redis-sentinel)."""

    #: ``host:port`` of each Sentinel (a JSON list, or separated by commas, semicolons or
    #: spaces); they are asked in turn. Empty: no Sentinel, ``redis_url`` is used; set:
    #: ``redis_url`` is ignored.
    addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The primary's name in the Sentinels' configuration (``sentinel monitor <name> ...``).
    service_name: str = Field(default="mymaster", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Credentials of the Sentinels themselves (``requirepass`` in sentinel.conf).
    username: str | None = None
    password: SecretStr | None = None
    #: Credentials and database of the primary and its replicas (the data nodes).
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    db: int = Field(default=0, ge=0)
    #: Timeout of one question to a Sentinel ("which node is the primary?"); the data
    #: nodes use the state's ``socket_timeout_seconds`` / ``connect_timeout_seconds``.
    socket_timeout_seconds: float = Field(default=0.5, gt=0)
    #: While the primary is unreachable (or the ``redis`` breaker is open), serve reads
    #: from a replica; writes still need the primary.
    replica_reads: bool = True

    @field_validator("addresses", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in re.split(r"[,;\s]+", text) if part]
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            sentinel_address(address)
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.addresses)

    def hosts(self) -> list[tuple[str, int]]:
        return [sentinel_address(a) for a in self.addresses]


def sentinel_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) → ``(host, port)``; a clear error otherwise."""
    host, sep, port = address.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"sentinel address {address!r} is not host:port (e.g. redis-sentinel.redis.svc:26379)"
        )
    return host, int(port)


class StateSettings(BaseModel):
    """Where sessions, checkpoints, events, queued turns, rate-limit counters and breaker
    state live. ``memory`` is one process's (development); ``redis`` is shared by every
    replica (production: pods are stateless)."""

    backend: Literal["memory", "redis"] = "memory"
    #: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS). Ignored with Sentinel.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Without Sentinel: a replica of ``redis_url`` (``--replicaof``) that serves reads
    #: while the primary is unavailable; writes wait for the primary (no failover).
    replica_url: str | None = None
    #: Redis through Sentinel (primary + replicas, automatic failover) instead of one URL.
    sentinel: SentinelSettings = Field(default_factory=SentinelSettings)
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

    @model_validator(mode="after")
    def _sentinel_needs_redis(self) -> Self:
        if not self.sentinel.enabled:
            return self
        if self.replica_url is not None:
            raise ValueError(
                "AGENTFLEET_STATE__REPLICA_URL is for a primary + replica pair without "
                "Sentinel; with AGENTFLEET_STATE__SENTINEL__ADDRESSES the Sentinels name "
                "the replicas: unset it"
            )
        if self.backend != "redis":
            raise ValueError(
                "AGENTFLEET_STATE__SENTINEL__ADDRESSES is set but the state backend is "
                f"{self.backend!r}: set AGENTFLEET_STATE__BACKEND=redis (or unset the addresses)"
            )
        return self
