"""Per-session inboxes and leases on Redis (the :class:`TurnQueue` port).

==============================  ======  ==============================================
``<p>:s:{<id>}:inbox``          LIST    accepted messages (QueuedMessage JSON), in order
``<p>:s:{<id>}:inflight``       HASH    the message being run: ``msg``, ``attempt``,
                                        ``claim``, ``owner``
``<p>:s:{<id>}:lease``          STRING  the replica running the session's turns (PX TTL)
``<p>:s:{<id>}:idem:<key>``     STRING  the QueuedMessage first accepted under the key
``<p>:pending``                 ZSET    sessions with queued or in-flight work
==============================  ======  ==============================================

Every step is one Lua script, and each is safe to run twice (a command retried after a
timeout may have run already): ``accept`` is keyed by the idempotency key, ``next`` by the
caller's claim id, ``finish`` by the claim id, lease operations by the owner.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from agentfleet_runtime.state.base import (
    Acceptance,
    Claim,
    IdempotencyConflictError,
    LeaseLostError,
    QueuedMessage,
)
from agentfleet_runtime.state.redis_client import Keys, text, translate_errors

_ACCEPT = """
local seen = redis.call('GET', KEYS[1])
if seen then return {0, seen} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[4])
return {1, ARGV[1]}
"""

_TRY_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease, inflight, inbox, pending; ARGV: owner, ttl ms, claim id, session id
_NEXT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost'} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local msg = redis.call('HGET', KEYS[2], 'msg')
if msg then
  if redis.call('HGET', KEYS[2], 'claim') ~= ARGV[3] then
    redis.call('HINCRBY', KEYS[2], 'attempt', 1)
    redis.call('HSET', KEYS[2], 'claim', ARGV[3], 'owner', ARGV[1])
  end
  return {'claimed', msg, redis.call('HGET', KEYS[2], 'attempt')}
end
msg = redis.call('LPOP', KEYS[3])
if not msg then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[4])
  return {'empty'}
end
redis.call('HSET', KEYS[2], 'msg', msg, 'attempt', 1, 'claim', ARGV[3], 'owner', ARGV[1])
return {'claimed', msg, '1'}
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class RedisTurnQueue:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        idempotency_ttl_seconds: int = 86_400,
        session_ttl_seconds: int = 0,
    ) -> None:
        self._r = client
        self._k = keys
        self._idem_ttl_ms = idempotency_ttl_seconds * 1000
        self._ttl_ms = session_ttl_seconds * 1000
        self._accept = client.register_script(_ACCEPT)
        self._try_lease = client.register_script(_TRY_LEASE)
        self._renew = client.register_script(_RENEW)
        self._next = client.register_script(_NEXT)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)

    @translate_errors
    async def accept(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str,
        message_id: str,
        stream_tokens: bool = True,
    ) -> Acceptance:
        message = QueuedMessage(
            message_id=message_id,
            turn_id="turn_" + message_id.removeprefix("msg_"),
            session_id=session_id,
            content=content,
            idempotency_key=idempotency_key,
            accepted_at=time.time(),
            stream_tokens=stream_tokens,
        )
        fresh, raw = await self._accept(
            keys=[
                self._k.idempotency(session_id, idempotency_key),
                self._k.inbox(session_id),
                self._k.pending,
            ],
            args=[
                message.model_dump_json(),
                self._idem_ttl_ms,
                repr(time.time()),
                session_id,
                self._ttl_ms,
            ],
        )
        stored = QueuedMessage.model_validate_json(raw)
        if not fresh and stored.content != content:
            raise IdempotencyConflictError(
                f"idempotency key {idempotency_key!r} was used for another message",
                session=session_id,
            )
        return Acceptance(message=stored, duplicate=not fresh)

    @translate_errors
    async def remember(self, message: QueuedMessage) -> None:
        """Record a message's idempotency key only (it was accepted and queued elsewhere:
        in memory while Redis was unavailable), so that a resend is recognised here."""
        await self._r.set(
            self._k.idempotency(message.session_id, message.idempotency_key),
            message.model_dump_json(),
            px=self._idem_ttl_ms,
            nx=True,
        )

    @translate_errors
    async def try_lease(self, session_id: str, owner: str, ttl: float) -> bool:
        return bool(await self._try_lease(keys=[self._k.lease(session_id)], args=[owner, _ms(ttl)]))

    @translate_errors
    async def renew(self, session_id: str, owner: str, ttl: float) -> bool:
        return bool(await self._renew(keys=[self._k.lease(session_id)], args=[owner, _ms(ttl)]))

    @translate_errors
    async def next(self, session_id: str, owner: str, ttl: float, claim_id: str) -> Claim | None:
        result = await self._next(
            keys=[
                self._k.lease(session_id),
                self._k.inflight(session_id),
                self._k.inbox(session_id),
                self._k.pending,
            ],
            args=[owner, _ms(ttl), claim_id, session_id],
        )
        status = text(result[0])
        if status == "lost":
            raise LeaseLostError(f"session {session_id} is leased by another replica")
        if status == "empty":
            return None
        return Claim(
            message=QueuedMessage.model_validate_json(result[1]),
            attempt=int(result[2]),
            claim_id=claim_id,
        )

    @translate_errors
    async def finish(self, session_id: str, owner: str, claim_id: str) -> None:
        await self._finish(keys=[self._k.inflight(session_id)], args=[claim_id])

    @translate_errors
    async def release(self, session_id: str, owner: str) -> None:
        await self._release(keys=[self._k.lease(session_id)], args=[owner])

    @translate_errors
    async def pending(self, limit: int = 100) -> list[str]:
        return [text(s) for s in await self._r.zrange(self._k.pending, 0, limit - 1)]

    @translate_errors
    async def depth(self, session_id: str) -> int:
        return int(await self._r.llen(self._k.inbox(session_id)))

    @translate_errors
    async def delete(self, session_id: str) -> None:
        idem = [k async for k in self._r.scan_iter(match=self._k.idempotency_pattern(session_id))]
        await self._r.delete(
            self._k.inbox(session_id),
            self._k.inflight(session_id),
            self._k.lease(session_id),
            *idem,
        )
        await self._r.zrem(self._k.pending, session_id)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
