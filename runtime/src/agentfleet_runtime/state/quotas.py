"""Counters and locks behind the tenant quotas (:mod:`agentfleet_runtime.tenants`).

Two small primitives, shared by every replica on Redis:

* :meth:`QuotaStore.add` — add to a counter that expires (``INCRBY`` + ``EXPIRE`` in one
  step): the tokens a tenant used today.
* :meth:`QuotaStore.lock` — hold a named lock while a quota is checked and the thing it
  limits is created, so that concurrent requests cannot all pass a count-then-create
  check (redis-py's ``Lock``: ``SET NX PX`` with a token, released by a script; in memory
  an :class:`asyncio.Lock` per name).

Key layout on Redis: ``<prefix>:<tenant>:quota:<name>`` (a STRING counter) and
``<prefix>:<tenant>:quota-lock:<name>`` (the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from agentfleet_runtime.state.redis_client import ContentionError, Keys, text, translate_errors


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


class MemoryQuotaStore:
    """One process's counters and locks (development)."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

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


# INCRBY, and an expiry set when the counter is created (so a day's counter ends).
_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""


class RedisQuotaStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._base = keys.base
        self._add = client.register_script(_ADD)

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
            with contextlib.suppress(LockError):  # expired meanwhile: nothing to release
                await lock.release()

    @staticmethod
    @translate_errors
    async def _acquire(lock: Lock) -> bool:
        return bool(await lock.acquire())
