"""The registry of runtime replicas: each replica writes its own record every few
seconds (:class:`~agentfleet_runtime.discovery.instances.InstanceHeartbeat`), so any
replica — and anyone with the API's ``admin`` scope — can see which replicas exist,
which are ready, which config they run, and which stopped answering.

Redis layout (``<p>`` = ``<prefix>:<namespace>``):

===================  =====  ===============================================================
``<p>:instances``    HASH   replica id → instance JSON (with ``heartbeat_at``); a record
                            whose heartbeat is older than its ``ttl_seconds`` is *stale*,
                            and one older than ``PRUNE_AFTER_TTLS`` times the ttl is removed by the
                            next replica that lists them
===================  =====  ===============================================================
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.redis_client import Keys, text, translate_errors

#: A record this many TTLs old belongs to a replica that is gone: it is removed.
PRUNE_AFTER_TTLS: Final = 10


class InstanceRecord(BaseModel):
    """One runtime replica as it last described itself."""

    id: str
    version: str
    #: Where other replicas and operators reach it (``host:port``; the pod IP in a cluster).
    address: str
    started_at: datetime
    heartbeat_at: datetime = Field(default_factory=utcnow)
    #: Seconds after ``heartbeat_at`` the record is considered stale.
    ttl_seconds: float
    ready: bool
    #: Why it is not ready (loading, draining, saturated...), when it is not.
    not_ready_reason: str | None = None
    #: The agents it runs (shared ones from its config).
    agents: list[str] = Field(default_factory=list)
    #: SHA-256 of the runtime config it runs (the Agent's ``status.configHash``).
    config_digest: str | None = None
    #: Whether it serves from memory because the state backend is down (degraded mode).
    degraded: bool = False
    #: Dependencies whose breaker refuses calls right now.
    refusing: list[str] = Field(default_factory=list)

    def state(self, now: datetime | None = None) -> str:
        """``ready``, ``not_ready`` or ``stale`` (no heartbeat within its TTL)."""
        now = now or utcnow()
        if now - self.heartbeat_at > timedelta(seconds=self.ttl_seconds):
            return "stale"
        return "ready" if self.ready else "not_ready"


class InstanceRegistry(Protocol):
    async def put(self, record: InstanceRecord) -> None: ...

    async def remove(self, instance_id: str) -> None: ...

    async def list(self) -> list[InstanceRecord]:
        """Every record (stale ones included; long-gone ones pruned)."""
        ...


def _gone(record: InstanceRecord, now: datetime) -> bool:
    return now - record.heartbeat_at > timedelta(seconds=record.ttl_seconds * PRUNE_AFTER_TTLS)


class MemoryInstanceRegistry:
    def __init__(self) -> None:
        self._items: dict[str, InstanceRecord] = {}

    async def put(self, record: InstanceRecord) -> None:
        self._items[record.id] = record

    async def remove(self, instance_id: str) -> None:
        self._items.pop(instance_id, None)

    async def list(self) -> list[InstanceRecord]:
        now = utcnow()
        for key, record in list(self._items.items()):
            if _gone(record, now):
                del self._items[key]
        return sorted(self._items.values(), key=lambda r: r.id)


class RedisInstanceRegistry:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = f"{keys.base}:instances"

    @translate_errors
    async def put(self, record: InstanceRecord) -> None:
        await self._r.hset(self._key, record.id, record.model_dump_json())

    @translate_errors
    async def remove(self, instance_id: str) -> None:
        await self._r.hdel(self._key, instance_id)

    @translate_errors
    async def list(self) -> list[InstanceRecord]:
        raw: dict[Any, Any] = await self._r.hgetall(self._key)
        now = utcnow()
        records: list[InstanceRecord] = []
        gone: list[str] = []
        for field, value in raw.items():
            try:
                record = InstanceRecord.model_validate(json.loads(text(value)))
            except ValueError:
                gone.append(text(field))  # an unreadable record: a bug or a newer version
                continue
            if _gone(record, now):
                gone.append(record.id)
            else:
                records.append(record)
        if gone:
            await self._r.hdel(self._key, *gone)
        return sorted(records, key=lambda r: r.id)
