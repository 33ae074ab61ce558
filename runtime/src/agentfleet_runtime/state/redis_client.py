"""The Redis connection, key layout, error translation and optimistic locking shared by
the Redis stores.

* **Retries on a fresh connection**: a command that fails with a connection error or a
  timeout is retried (exponential backoff with jitter) after redis-py drops the broken
  socket and opens a new one. Only idempotent operations are sent this way: the event
  append carries a per-turn sequence number and every Lua script checks whether it already
  ran (see :mod:`.redis_events`, :mod:`.redis_turns`).
* **Optimistic locking**: :func:`optimistic` runs WATCH/MULTI/EXEC read-modify-writes and
  retries a transaction that lost a race, after a randomized delay (so contending
  replicas do not collide again in lockstep).
* Errors leave the stores as the runtime's own: :class:`DependencyConnectionError` /
  :class:`DependencyTimeoutError` with ``dependency="redis"``.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyTimeoutError,
    RetryableDependencyError,
)
from agentfleet_runtime.state.settings import StateSettings

CONFLICTS = Counter(
    "agentfleet_state_conflicts_total",
    "Optimistic-lock conflicts (WATCH/MULTI lost a race) in the Redis state backend",
    ["operation"],
)

# Degraded mode (state/degraded/): Redis unavailable, state kept in memory, resync.
STATE_DEGRADED = Gauge(
    "agentfleet_state_degraded",
    "1 while the Redis state backend runs in degraded mode: Redis was unavailable and "
    "writes kept in this process's memory are not all written back yet",
)
STATE_LOCAL_SESSIONS = Gauge(
    "agentfleet_state_local_sessions",
    "Sessions served from this process's memory (degraded mode) until their writes are in Redis",
)
STATE_RESYNC_PENDING = Gauge(
    "agentfleet_state_resync_pending",
    "Writes kept in memory during a Redis outage, waiting to be written back (resync)",
)
STATE_RESYNC_WRITES = Counter(
    "agentfleet_state_resync_writes",
    "Writes kept in memory during a Redis outage and replayed on Redis, by operation and "
    "outcome: written, renumbered (event ids moved after events written elsewhere "
    "meanwhile), dropped (Redis refused the write)",
    ["operation", "outcome"],
)
STATE_UNAVAILABLE = Counter(
    "agentfleet_state_unavailable",
    "State operations refused with 503 state-unavailable: Redis was unavailable and this "
    "process could not serve them from memory",
    ["operation"],
)


class ContentionError(RetryableDependencyError):
    """An optimistic transaction kept losing races until its attempts ran out."""

    status = 503
    slug = "state-contention"
    title = "The state store is too contended"


def text(value: Any) -> str:
    """A Redis reply (bytes with ``decode_responses=False``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(settings: StateSettings) -> aioredis.Redis:
    """A client whose commands are retried on a fresh connection after a connection
    error or a timeout. Values are bytes (checkpoints are binary). The pool blocks (up to
    the socket timeout) when all ``max_connections`` are busy instead of failing: a burst
    of subscriptions queues for a connection."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout_seconds,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.connect_timeout_seconds,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), settings.retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        decode_responses=False,
    )
    return aioredis.Redis(connection_pool=pool)


class Keys:
    """Every key of one tenant: ``<prefix>:<tenant>:...``. A session's keys share the hash
    tag ``{<session id>}`` so that its Lua scripts touch one slot."""

    def __init__(self, prefix: str, tenant: str) -> None:
        self.base = f"{prefix}:{tenant}"
        self.agents = f"{self.base}:agents"
        self.sessions = f"{self.base}:sessions"
        self.pending = f"{self.base}:pending"
        self.control = f"{self.base}:control"
        self.checkpoint_threads = f"{self.base}:cp:threads"

    def session(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:record"

    def events(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:events"

    def channel(self, sid: str) -> str:
        return f"{self.base}:events:{sid}"

    def inbox(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:inbox"

    def inflight(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:inflight"

    def lease(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:lease"

    def idempotency(self, sid: str, key: str) -> str:
        return f"{self.base}:s:{{{sid}}}:idem:{key}"

    def idempotency_pattern(self, sid: str) -> str:
        return f"{self.base}:s:{{{sid}}}:idem:*"

    def checkpoint_prefix(self, thread: str) -> str:
        return f"{self.base}:cp:{{{thread}}}"

    def rate(self, key: str) -> str:
        return f"{self.base}:rate:{key}"

    def breaker(self, name: str) -> str:
        return f"{self.base}:breaker:{name}"


def translate_errors[**P2, R](
    fn: Callable[P2, Coroutine[Any, Any, R]],
) -> Callable[P2, Coroutine[Any, Any, R]]:
    """Redis driver errors → the runtime's dependency errors (retryable, 502/504)."""

    @functools.wraps(fn)
    async def wrapper(*args: P2.args, **kwargs: P2.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except RedisTimeoutError as exc:
            raise DependencyTimeoutError(f"redis: {exc}", dependency="redis") from exc
        except RedisConnectionError as exc:
            raise DependencyConnectionError(f"redis: {exc}", dependency="redis") from exc

    return wrapper


async def optimistic[T](
    client: aioredis.Redis,
    keys: list[str],
    body: Callable[[Pipeline], Awaitable[T]],
    *,
    operation: str,
    attempts: int = 50,
    base_delay: float = 0.002,
    max_delay: float = 0.1,
) -> T:
    """Run ``body`` as a WATCH/MULTI/EXEC transaction on ``keys``: ``body`` reads through
    the pipeline (immediate mode, after WATCH), calls ``pipe.multi()`` and queues its
    writes; this executes them. A transaction that lost a race (``WatchError``) is retried
    after a random delay that grows with each conflict (full jitter)."""
    for attempt in range(attempts):
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(*keys)
                result = await body(pipe)
                await pipe.execute()
                return result
            except WatchError:
                CONFLICTS.labels(operation).inc()
                delay = min(max_delay, base_delay * 2**attempt)
                await asyncio.sleep(random.uniform(0, delay))
    raise ContentionError(
        f"{operation}: gave up after {attempts} conflicting attempts", dependency="redis"
    )
