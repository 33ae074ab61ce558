"""Agents, sessions, rate-limit buckets and circuit-breaker state on Redis.

Key layout (``<p>`` = ``<prefix>:<tenant>``):

==========================  ========  =================================================
``<p>:agents``              HASH      agent key (name, or ``<tenant>/<name>``) → AgentRecord
``<p>:sessions``            ZSET      session id, scored by creation time (an index)
``<p>:s:{<id>}:record``     STRING    SessionRecord JSON, expires after the session TTL
``<p>:rate:<key>``          HASH      token bucket: ``tokens``, ``at`` (Redis time)
``<p>:breaker:<name>``      STRING    BreakerState JSON (``version`` for compare-and-set)
``<p>:apikeys``             HASH      key id → ApiKeyRecord JSON (hashes only, no keys)
``<p>:tenants``             HASH      tenant id → TenantRecord JSON
==========================  ========  =================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from agentfleet_runtime.auth.apikeys import ApiKeyRecord
from agentfleet_runtime.state.base import (
    AgentRecord,
    BreakerState,
    RateDecision,
    SessionRecord,
)
from agentfleet_runtime.state.redis_client import Keys, optimistic, text, translate_errors
from agentfleet_runtime.tenants import TenantRecord


class RedisAgentStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    @translate_errors
    async def put(self, record: AgentRecord) -> None:
        await self._r.hset(self._k.agents, record.key, record.model_dump_json())

    @translate_errors
    async def get(self, key: str) -> AgentRecord | None:
        raw = await self._r.hget(self._k.agents, key)
        return AgentRecord.model_validate_json(raw) if raw is not None else None

    @translate_errors
    async def list(self) -> list[AgentRecord]:
        raw = await self._r.hgetall(self._k.agents)
        return [AgentRecord.model_validate_json(v) for _, v in sorted(raw.items())]

    @translate_errors
    async def delete(self, key: str) -> bool:
        return bool(await self._r.hdel(self._k.agents, key))


class RedisApiKeyStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.base + ":apikeys"

    @translate_errors
    async def put(self, record: ApiKeyRecord) -> None:
        await self._r.hset(self._key, record.id, record.model_dump_json())

    @translate_errors
    async def get(self, key_id: str) -> ApiKeyRecord | None:
        raw = await self._r.hget(self._key, key_id)
        return ApiKeyRecord.model_validate_json(raw) if raw is not None else None

    @translate_errors
    async def list(self, *, tenant: str | None = None) -> list[ApiKeyRecord]:
        raw = await self._r.hgetall(self._key)
        records = [ApiKeyRecord.model_validate_json(v) for v in raw.values()]
        chosen = [r for r in records if tenant is None or r.tenant == tenant]
        return sorted(chosen, key=lambda r: r.created_at)

    @translate_errors
    async def delete(self, key_id: str) -> bool:
        return bool(await self._r.hdel(self._key, key_id))


class RedisTenantStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._key = keys.base + ":tenants"

    @translate_errors
    async def put(self, record: TenantRecord) -> None:
        await self._r.hset(self._key, record.id, record.model_dump_json())

    @translate_errors
    async def get(self, tenant_id: str) -> TenantRecord | None:
        raw = await self._r.hget(self._key, tenant_id)
        return TenantRecord.model_validate_json(raw) if raw is not None else None

    @translate_errors
    async def list(self) -> list[TenantRecord]:
        raw = await self._r.hgetall(self._key)
        return [TenantRecord.model_validate_json(v) for _, v in sorted(raw.items())]

    @translate_errors
    async def delete(self, tenant_id: str) -> bool:
        return bool(await self._r.hdel(self._key, tenant_id))


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, keys: Keys, *, ttl_seconds: int = 0) -> None:
        self._r = client
        self._k = keys
        self._ttl = ttl_seconds or None

    @translate_errors
    async def put(self, record: SessionRecord) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._k.session(record.id), record.model_dump_json(), ex=self._ttl)
            pipe.zadd(self._k.sessions, {record.id: record.created_at.timestamp()}, nx=True)
            await pipe.execute()

    @translate_errors
    async def get(self, session_id: str) -> SessionRecord | None:
        raw = await self._r.get(self._k.session(session_id))
        return SessionRecord.model_validate_json(raw) if raw is not None else None

    @translate_errors
    async def list(
        self, *, agent: str | None = None, tenant: str | None = None
    ) -> list[SessionRecord]:
        ids = [text(i) for i in await self._r.zrange(self._k.sessions, 0, -1)]
        records: list[SessionRecord] = []
        expired: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            values = await self._r.mget([self._k.session(i) for i in chunk])
            for sid, raw in zip(chunk, values, strict=True):
                if raw is None:
                    expired.append(sid)
                    continue
                record = SessionRecord.model_validate_json(raw)
                if (agent is None or record.agent == agent) and (
                    tenant is None or record.tenant == tenant
                ):
                    records.append(record)
        if expired:  # the record expired (session TTL): drop it from the index too
            await self._r.zrem(self._k.sessions, *expired)
        return records

    @translate_errors
    async def delete(self, session_id: str) -> bool:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._k.session(session_id))
            pipe.zrem(self._k.sessions, session_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    @translate_errors
    async def update(
        self, session_id: str, change: Callable[[SessionRecord], None]
    ) -> SessionRecord | None:
        key = self._k.session(session_id)

        async def body(pipe: Pipeline) -> SessionRecord | None:
            raw = await pipe.get(key)
            if raw is None:
                pipe.multi()  # type: ignore[no-untyped-call]
                return None
            record = SessionRecord.model_validate_json(raw)
            change(record)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, record.model_dump_json(), ex=self._ttl)
            return record

        return await optimistic(self._r, [key], body, operation="session.update")


# A token bucket in one atomic step, on the server's clock (replicas' clocks may differ).
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif rate > 0 then
  wait = (cost - tokens) / rate
else
  wait = -1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local ttl = 60
if rate > 0 then ttl = math.ceil(burst / rate) + 60 end
redis.call('EXPIRE', KEYS[1], ttl)
return {allowed, tostring(tokens), tostring(wait)}
"""


class RedisRateLimitStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys
        self._script = client.register_script(_TOKEN_BUCKET)

    @translate_errors
    async def acquire(self, key: str, *, rate: float, burst: int, cost: int = 1) -> RateDecision:
        allowed, tokens, wait = await self._script(
            keys=[self._k.rate(key)], args=[repr(float(rate)), burst, cost]
        )
        retry_after = float(wait)
        return RateDecision(
            allowed=bool(allowed),
            remaining=int(float(tokens)),
            retry_after=float("inf") if retry_after < 0 else retry_after,
        )

    @translate_errors
    async def reset(self, key: str) -> None:
        await self._r.delete(self._k.rate(key))


class RedisBreakerStateStore:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    @translate_errors
    async def get(self, name: str) -> BreakerState:
        raw = await self._r.get(self._k.breaker(name))
        return BreakerState.model_validate_json(raw) if raw is not None else BreakerState()

    @translate_errors
    async def compare_and_set(self, name: str, expected_version: int, new: BreakerState) -> bool:
        key = self._k.breaker(name)
        stored = new.model_copy(update={"version": expected_version + 1})
        async with self._r.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            raw = await pipe.get(key)
            current = BreakerState.model_validate_json(raw) if raw else BreakerState()
            if current.version != expected_version:
                await pipe.unwatch()  # type: ignore[no-untyped-call]
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, stored.model_dump_json())
            try:
                await pipe.execute()
            except WatchError:
                return False
        return True

    @translate_errors
    async def update(
        self, name: str, change: Callable[[BreakerState], Awaitable[None] | None]
    ) -> BreakerState:
        key = self._k.breaker(name)

        async def body(pipe: Pipeline) -> BreakerState:
            raw = await pipe.get(key)
            state = BreakerState.model_validate_json(raw) if raw else BreakerState()
            result = change(state)
            if result is not None:
                await result
            state.version += 1
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, state.model_dump_json())
            return state

        return await optimistic(self._r, [key], body, operation="breaker.update")

    @translate_errors
    async def incr_failures(self, name: str) -> int:
        def bump(state: BreakerState) -> None:
            state.failures += 1

        return (await self.update(name, bump)).failures

    @translate_errors
    async def delete(self, name: str) -> None:
        await self._r.delete(self._k.breaker(name))
