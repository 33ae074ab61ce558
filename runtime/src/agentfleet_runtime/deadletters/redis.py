"""Dead letters in Redis (shared by every replica), through the ``redis`` resilience
pipeline, with an in-memory fallback: while Redis is unreachable (or its breaker is open)
letters are kept in this process and written back once Redis answers again (resync, in
the background, oldest first). Listing merges what is kept locally.

Keys (``<prefix>:<tenant>:``): ``deadletters`` (HASH id → JSON) and
``deadletters:index`` (ZSET id → creation time), trimmed to ``max_letters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from agentfleet_runtime.deadletters.base import DeadLetter, DeadLetterStatus
from agentfleet_runtime.deadletters.memory import MemoryDeadLetterStore
from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.resilience.pipeline import Pipeline
from agentfleet_runtime.resilience.redis import run

__all__ = ["RedisDeadLetterStore"]

log = logging.getLogger(__name__)


class RedisDeadLetterStore:
    def __init__(
        self,
        client: aioredis.Redis,
        pipeline: Pipeline,
        *,
        prefix: str = "agentfleet",
        tenant: str = "default",
        max_letters: int = 10_000,
        resync_interval: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        self._r = client
        self._pipeline = pipeline
        base = f"{prefix}:{tenant}:deadletters"
        self._data = base
        self._index = f"{base}:index"
        self._max = max_letters
        self._resync_interval = resync_interval
        self._owns_client = owns_client
        #: Letters Redis has not got yet (it was unreachable when they were recorded).
        self.local = MemoryDeadLetterStore(max_letters)
        self._resync: asyncio.Task[None] | None = None

    @property
    def pending_resync(self) -> int:
        return len(self.local)

    async def _write(self, letter: DeadLetter) -> None:
        async def write() -> None:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(self._data, letter.id, letter.model_dump_json())
                pipe.zadd(self._index, {letter.id: letter.created_at.timestamp()})
                await pipe.execute()
            await self._trim()

        await run(self._pipeline, write)

    async def _trim(self) -> None:
        excess = await self._r.zcard(self._index) - self._max
        if excess > 0:
            oldest = await self._r.zrange(self._index, 0, excess - 1)
            if oldest:
                await self._r.hdel(self._data, *oldest)
                await self._r.zrem(self._index, *oldest)

    async def add(self, letter: DeadLetter) -> None:
        try:
            await self._write(letter)
        except DependencyError as exc:
            await self.local.put(letter)
            log.warning(
                "dead letter %s kept in memory until Redis answers (%s)",
                letter.id,
                exc.detail,
                extra={"dead_letter": letter.id},
            )
            self._start_resync()

    put = add

    async def get(self, letter_id: str) -> DeadLetter | None:
        local = await self.local.get(letter_id)
        if local is not None:
            return local
        raw = await run(self._pipeline, lambda: self._r.hget(self._data, letter_id))
        return DeadLetter.model_validate_json(raw) if raw is not None else None

    async def list(
        self,
        *,
        agent: str | None = None,
        status: DeadLetterStatus | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        letters = await self.local.list(agent=agent, status=status, limit=limit)
        try:
            ids: list[Any] = list(
                await run(self._pipeline, lambda: self._r.zrevrange(self._index, 0, -1))
            )
            raws: list[Any] = (
                list(await run(self._pipeline, lambda: self._r.hmget(self._data, ids)))
                if ids
                else []
            )
        except DependencyError:
            if not letters:
                raise
            return letters  # what this process keeps, while Redis is down
        known = {letter.id for letter in letters}
        for raw in raws:
            if raw is None:
                continue
            letter = DeadLetter.model_validate_json(raw)
            if letter.id in known:
                continue
            if (agent is None or letter.agent == agent) and (
                status is None or letter.status == status
            ):
                letters.append(letter)
        letters.sort(key=lambda item: item.created_at, reverse=True)
        return letters[:limit]

    async def delete(self, letter_id: str) -> bool:
        deleted = await self.local.delete(letter_id)

        async def remove() -> int:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hdel(self._data, letter_id)
                pipe.zrem(self._index, letter_id)
                removed, _ = await pipe.execute()
                return int(removed)

        return bool(await run(self._pipeline, remove)) or deleted

    # -- resync --------------------------------------------------------------------------

    def _start_resync(self) -> None:
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self._resync_loop())

    async def _resync_loop(self) -> None:
        while len(self.local):
            await asyncio.sleep(self._resync_interval)
            await self.resync()

    async def resync(self) -> int:
        """Write the letters kept in memory to Redis; answers how many were written."""
        written = 0
        for letter in self.local.drain():
            try:
                await self._write(letter)
            except DependencyError:
                await self.local.put(letter)
                continue
            written += 1
        if written:
            log.info("dead letters resynced to Redis: %d", written, extra={"written": written})
        return written

    async def aclose(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
        if self._owns_client:
            await self._r.aclose()
