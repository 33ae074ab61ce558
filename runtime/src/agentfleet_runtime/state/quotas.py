"""Counters and locks behind the tenant quotas (:mod:`agentfleet_runtime.tenants`).

Two small primitives, shared by every replica on Redis:

* :meth:`QuotaStore.add` — add to a counter that expires (``INCRBY`` + ``EXPIRE`` in one
  step): the tokens a tenant used today.
* :meth:`QuotaStore.lock` — hold a named lock while a quota is checked and the thing it
  limits is created, so that concurrent requests cannot all pass a count-then-create
  check (redis-py's ``Lock``: ``SET NX PX`` with a token, released by a script; in memory
  an :class:`asyncio.Lock` per name).

* :meth:`QuotaStore.take_slot` / :meth:`~QuotaStore.release_slots` — reserve one of
  ``limit`` slots atomically (a turn running for a tenant): a sorted set of holders scored
  by their expiry, so that the slots of a replica that died time out (in memory a dict
  under the event loop: no await between the count and the take).

Key layout on Redis: ``<prefix>:<tenant>:quota:<name>`` (a STRING counter),
``<prefix>:<tenant>:quota-lock:<name>`` (the lock) and ``<prefix>:<tenant>:quota-slots:<name>``
(a ZSET: holder → expiry, server time in seconds).

:class:`FailOpenQuotaStore` wraps the Redis store (behind the ``redis`` breaker) so that
quotas do not refuse every turn while Redis is unavailable: see docs/resilience.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.asyncio.lock import Lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfleet_runtime.errors import (
    CallRefusedError,
    DependencyConnectionError,
    DependencyTimeoutError,
    OverloadedError,
)
from agentfleet_runtime.state.redis_client import ContentionError, Keys, text, translate_errors

log = logging.getLogger(__name__)

QUOTA_FAIL_OPEN = Counter(
    "agentfleet_quota_fail_open",
    "Quota operations allowed without their check because Redis was unavailable",
    ["operation"],
)


class QuotaStore(Protocol):
    async def add(self, name: str, amount: int, *, ttl_seconds: int) -> int:
        """Add ``amount`` to counter ``name`` (created at 0, expiring ``ttl_seconds`` after
        it was created); the new value."""
        ...

    async def get(self, name: str) -> int:
        """The counter's value (0 when it does not exist or expired)."""
        ...

    def lock(self, name: str, *, wait_seconds: float = 10.0) -> AbstractAsyncContextManager[None]:
        """Hold lock ``name`` for the block: waits up to ``wait_seconds`` for it (then
        :class:`~agentfleet_runtime.state.redis_client.ContentionError`), and a holder
        that dies loses it after ``wait_seconds``."""
        ...

    async def take_slot(
        self, name: str, holder: str, *, limit: int | None, ttl_seconds: float
    ) -> tuple[bool, int]:
        """Reserve a slot of ``name`` for ``holder`` (kept ``ttl_seconds``) unless
        ``limit`` slots are held (``None``: no limit: only refresh the holder's expiry);
        whether it was taken (or already held) and how many are held now."""
        ...

    async def release_slots(self, name: str, prefix: str) -> int:
        """Free the slots of ``name`` whose holder starts with ``prefix``; how many."""
        ...


class MemoryQuotaStore:
    """One process's counters and locks (development)."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots: dict[str, dict[str, float]] = {}

    async def add(self, name: str, amount: int, *, ttl_seconds: int) -> int:
        now = time.monotonic()
        expires, value = self._counters.get(name, (now + ttl_seconds, 0))
        if expires <= now:
            expires, value = now + ttl_seconds, 0
        self._counters[name] = (expires, value + amount)
        return value + amount

    async def get(self, name: str) -> int:
        expires, value = self._counters.get(name, (0.0, 0))
        return value if expires > time.monotonic() else 0

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait_seconds: float = 10.0) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with asyncio.timeout(wait_seconds):
                await lock.acquire()
        except TimeoutError:
            raise ContentionError(f"quota lock {name!r} busy for {wait_seconds} s") from None
        try:
            yield
        finally:
            lock.release()

    async def take_slot(
        self, name: str, holder: str, *, limit: int | None, ttl_seconds: float
    ) -> tuple[bool, int]:
        # no await from the count to the take: atomic on the event loop
        now = time.monotonic()
        slots = {h: e for h, e in self._slots.get(name, {}).items() if e > now}
        self._slots[name] = slots
        if limit is not None and holder not in slots and len(slots) >= limit:
            return False, len(slots)
        slots[holder] = now + ttl_seconds
        return True, len(slots)

    async def release_slots(self, name: str, prefix: str) -> int:
        slots = self._slots.get(name, {})
        gone = [h for h in slots if h.startswith(prefix)]
        for holder in gone:
            del slots[holder]
        return len(gone)


# INCRBY, and an expiry set when the counter is created (so a day's counter ends).
_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""


# Drop expired holders; refuse when full (unless the holder has a slot, or no limit);
# else add or refresh the holder. Scores are expiries in server time.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if limit >= 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local used = redis.call('ZCARD', KEYS[1])
  if used >= limit then return {0, used} end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return {1, redis.call('ZCARD', KEYS[1])}
"""

# ZREM the holders starting with ARGV[1] (a set is at most a quota's size).
_RELEASE = """
local gone = 0
for _, holder in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(holder, 1, string.len(ARGV[1])) == ARGV[1] then
    gone = gone + redis.call('ZREM', KEYS[1], holder)
  end
end
return gone
"""


class RedisQuotaStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._base = keys.base
        self._add = client.register_script(_ADD)
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)

    @translate_errors
    async def take_slot(
        self, name: str, holder: str, *, limit: int | None, ttl_seconds: float
    ) -> tuple[bool, int]:
        taken, used = await self._take(
            keys=[f"{self._base}:quota-slots:{name}"],
            args=[holder, -1 if limit is None else limit, ttl_seconds],
        )
        return bool(taken), int(used)

    @translate_errors
    async def release_slots(self, name: str, prefix: str) -> int:
        return int(await self._release(keys=[f"{self._base}:quota-slots:{name}"], args=[prefix]))

    @translate_errors
    async def add(self, name: str, amount: int, *, ttl_seconds: int) -> int:
        return int(await self._add(keys=[f"{self._base}:quota:{name}"], args=[amount, ttl_seconds]))

    @translate_errors
    async def get(self, name: str) -> int:
        raw = await self._r.get(f"{self._base}:quota:{name}")
        return int(text(raw)) if raw is not None else 0

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait_seconds: float = 10.0) -> AsyncIterator[None]:
        lock = self._r.lock(
            f"{self._base}:quota-lock:{name}", timeout=wait_seconds, blocking_timeout=wait_seconds
        )
        if not await self._acquire(lock):
            raise ContentionError(f"quota lock {name!r} busy for {wait_seconds} s")
        try:
            yield
        finally:
            # expired meanwhile, or Redis gone: the lock times out by itself
            with contextlib.suppress(LockError, RedisConnectionError, RedisTimeoutError):
                await lock.release()

    @staticmethod
    @translate_errors
    async def _acquire(lock: Lock) -> bool:
        return bool(await lock.acquire())


#: Errors that say Redis cannot be used now (as ``state.fallback``'s).
_UNAVAILABLE = (
    DependencyConnectionError,
    DependencyTimeoutError,
    OverloadedError,
    CallRefusedError,
)


class FailOpenQuotaStore:
    """``inner`` (the Redis store behind the ``redis`` breaker: it fails fast while Redis
    is down), failing *open*: while Redis is unavailable a quota is not checked — the
    request is allowed, logged and counted in ``agentfleet_quota_fail_open_total`` —
    because refusing every turn during an outage is worse than a quota overshot for its
    duration. Counters read 0, adds are lost, slots are not held, locks not taken."""

    def __init__(self, inner: QuotaStore) -> None:
        self._inner = inner

    @staticmethod
    def _open(operation: str, name: str, exc: Exception) -> None:
        QUOTA_FAIL_OPEN.labels(operation).inc()
        log.warning(
            "redis unavailable: quota %s not checked (allowed): %s",
            name,
            getattr(exc, "detail", exc),
            extra={"operation": operation},
        )

    async def add(self, name: str, amount: int, *, ttl_seconds: int) -> int:
        try:
            return await self._inner.add(name, amount, ttl_seconds=ttl_seconds)
        except _UNAVAILABLE as exc:
            self._open("add", name, exc)
            return 0

    async def get(self, name: str) -> int:
        try:
            return await self._inner.get(name)
        except _UNAVAILABLE as exc:
            self._open("get", name, exc)
            return 0

    async def take_slot(
        self, name: str, holder: str, *, limit: int | None, ttl_seconds: float
    ) -> tuple[bool, int]:
        try:
            return await self._inner.take_slot(name, holder, limit=limit, ttl_seconds=ttl_seconds)
        except _UNAVAILABLE as exc:
            self._open("take_slot", name, exc)
            return True, 0

    async def release_slots(self, name: str, prefix: str) -> int:
        try:
            return await self._inner.release_slots(name, prefix)
        except _UNAVAILABLE as exc:  # the slot times out (its expiry) instead
            self._open("release_slots", name, exc)
            return 0

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait_seconds: float = 10.0) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._inner.lock(name, wait_seconds=wait_seconds))
            except _UNAVAILABLE as exc:
                self._open("lock", name, exc)
            yield
