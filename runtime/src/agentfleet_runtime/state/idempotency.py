"""Idempotency keys of creating POSTs: the first response, kept for a while, so that a
retry with the same ``Idempotency-Key`` gets it again instead of creating twice.

The port is small on purpose: :meth:`IdempotencyStore.reserve` claims a key atomically
(``SET NX`` on Redis), so of two concurrent requests with the same key exactly one runs;
:meth:`~IdempotencyStore.complete` stores the outcome; :meth:`~IdempotencyStore.release`
forgets a claim whose request failed (so a retry runs again). What a key means (tenant,
caller, route) and what is stored (an encrypted response) is decided by the caller,
:mod:`agentfleet_runtime.api.idempotency`; the store sees opaque names and bytes.

Key layout on Redis: ``<prefix>:<tenant>:idem:<name>`` — a STRING holding the
:class:`IdempotencyRecord` JSON, expiring after its TTL.
"""

from __future__ import annotations

import time
from typing import Literal, Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel

from agentfleet_runtime.state.redis_client import Keys, translate_errors


class IdempotencyRecord(BaseModel):
    """A claimed key: ``pending`` while its request runs, then ``done`` with the response."""

    #: What the first request sent (a hash): a reuse with other content is refused.
    fingerprint: str
    state: Literal["pending", "done"] = "pending"
    status: int | None = None
    #: The response body, as the caller stored it (encrypted: opaque here).
    body: str | None = None


class IdempotencyStore(Protocol):
    async def reserve(
        self, name: str, record: IdempotencyRecord, *, ttl_seconds: float
    ) -> IdempotencyRecord | None:
        """Store ``record`` (pending) under ``name`` unless something is stored there;
        ``None`` when this call claimed it, else what is stored."""
        ...

    async def complete(self, name: str, record: IdempotencyRecord, *, ttl_seconds: float) -> None:
        """Replace the claim with its outcome, kept for ``ttl_seconds``."""
        ...

    async def release(self, name: str) -> None:
        """Forget a claim (its request failed: a retry runs again)."""
        ...


class MemoryIdempotencyStore:
    """One process's keys (development); expired entries are dropped as they are met and
    in a sweep every few hundred writes."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, IdempotencyRecord]] = {}
        self._writes = 0

    def _live(self, name: str) -> IdempotencyRecord | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[name]
            return None
        return entry[1].model_copy()

    def _put(self, name: str, record: IdempotencyRecord, ttl_seconds: float) -> None:
        self._entries[name] = (time.monotonic() + ttl_seconds, record.model_copy())
        self._writes += 1
        if self._writes % 256 == 0:
            now = time.monotonic()
            for key in [k for k, (expiry, _) in self._entries.items() if expiry <= now]:
                del self._entries[key]

    async def reserve(
        self, name: str, record: IdempotencyRecord, *, ttl_seconds: float
    ) -> IdempotencyRecord | None:
        existing = self._live(name)
        if existing is not None:
            return existing
        self._put(name, record, ttl_seconds)
        return None

    async def complete(self, name: str, record: IdempotencyRecord, *, ttl_seconds: float) -> None:
        self._put(name, record, ttl_seconds)

    async def release(self, name: str) -> None:
        self._entries.pop(name, None)


class RedisIdempotencyStore:
    """Keys shared by every replica: ``SET NX`` claims, so concurrent duplicates on
    different replicas cannot both run."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._prefix = keys.base + ":idem:"

    @translate_errors
    async def reserve(
        self, name: str, record: IdempotencyRecord, *, ttl_seconds: float
    ) -> IdempotencyRecord | None:
        # SET NX GET (Redis 7): set unless present, and return what was there, in one step.
        previous = await self._r.set(
            self._prefix + name,
            record.model_dump_json(),
            nx=True,
            get=True,
            px=max(1, int(ttl_seconds * 1000)),
        )
        if isinstance(previous, bytes | str):
            return IdempotencyRecord.model_validate_json(previous)
        return None

    @translate_errors
    async def complete(self, name: str, record: IdempotencyRecord, *, ttl_seconds: float) -> None:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        await self._r.set(self._prefix + name, record.model_dump_json(), px=ttl_ms)

    @translate_errors
    async def release(self, name: str) -> None:
        await self._r.delete(self._prefix + name)
