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
  :class:`DependencyTimeoutError` with ``dependency="redis"``. A ``READONLY`` reply (the
  node was demoted to a replica) is a connection error too: the command needs a primary.
* **Sentinel** (``AGENTFLEET_STATE__SENTINEL__ADDRESSES``): redis-py's ``Sentinel``
  finds the primary (``master_for``) and a replica (``slave_for``) for each new
  connection; after a failover new connections go to the promoted node, and a READONLY
  from a demoted primary drops the connection (redis-py turns it into a connection error)
  so the retry reconnects. :class:`PrimaryRedis` is the primary's client; inside
  :meth:`ReplicaReads.run` its read-only commands go to a replica instead and anything
  else is refused unsent (:class:`PrimaryRequiredError`) — the degraded mode uses it to
  serve reads while the primary is unreachable (:mod:`.degraded.mode`). Without
  Sentinel, ``AGENTFLEET_STATE__REPLICA_URL`` names the replica of a primary + replica pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.cluster import READ_COMMANDS
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyTimeoutError,
    RetryableDependencyError,
)
from agentfleet_runtime.state.settings import SentinelSettings, StateSettings

log = logging.getLogger(__name__)

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

# Sentinel (primary + replicas): failovers seen, the primary in use, reads from a replica.
STATE_FAILOVERS = Counter(
    "agentfleet_state_failovers_total",
    "Times Sentinel named another Redis primary than the one the state backend used "
    "(a failover, as seen by this process)",
)
STATE_PRIMARY = Gauge(
    "agentfleet_state_primary",
    "1 for the Redis primary (host:port) the state backend writes to, as Sentinel last named it",
    ["address"],
)
STATE_REPLICA_READS = Counter(
    "agentfleet_state_replica_reads_total",
    "State reads tried on a Redis replica because the primary was unavailable, by outcome: "
    "served, needs-primary (the call writes: refused unsent), failed (no replica answered)",
    ["outcome"],
)


class ContentionError(RetryableDependencyError):
    """An optimistic transaction kept losing races until its attempts ran out."""

    status = 503
    slug = "state-contention"
    title = "The state store is too contended"


def text(value: Any) -> str:
    """A Redis reply (bytes with ``decode_responses=False``) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(
    settings: StateSettings, *, retries: int | None = None, max_connections: int | None = None
) -> aioredis.Redis:
    """A client whose commands are retried on a fresh connection after a connection
    error or a timeout (``retries``: default ``settings.retries``; ``0`` for code whose
    retries the resilience pipeline owns). Values are bytes (checkpoints are binary). The
    pool blocks (up to the socket timeout) when all ``max_connections`` are busy instead
    of failing: a burst of subscriptions queues for a connection. With Sentinel configured
    (see :func:`connect_sentinel`) or a ``replica_url`` it is a :class:`PrimaryRedis`."""
    options: dict[str, Any] = {
        "max_connections": max_connections or settings.max_connections,
        "timeout": settings.socket_timeout_seconds,
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.connect_timeout_seconds,
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=1.0),
            settings.retries if retries is None else retries,
        ),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if settings.sentinel.enabled:
        return connect_sentinel(settings.sentinel, options)
    pool = aioredis.BlockingConnectionPool.from_url(settings.redis_url, **options)
    if settings.replica_url is None:
        return aioredis.Redis(connection_pool=pool)
    primary = PrimaryRedis.from_pool(pool)
    assert isinstance(primary, PrimaryRedis)
    replica_pool = aioredis.BlockingConnectionPool.from_url(settings.replica_url, **options)
    primary.replica = aioredis.Redis.from_pool(replica_pool)
    return primary


# -- Sentinel ---------------------------------------------------------------------------

#: Read-only commands a replica may answer (redis-py's list for Cluster replica reads).
REPLICA_COMMANDS = frozenset(READ_COMMANDS | {"PING"})

#: The :class:`PrimaryRedis` whose commands run on its replica in the current task.
_ON_REPLICA: contextvars.ContextVar[PrimaryRedis | None] = contextvars.ContextVar(
    "agentfleet_redis_on_replica", default=None
)


class PrimaryRequiredError(RedisConnectionError):
    """A write (or a transaction) was attempted while reads go to a replica: not sent."""


#: The primary each Sentinel-watched service was last seen at, by "<service>@<sentinels>":
#: shared by this process's pools (state, dead letters), so a failover counts once.
_PRIMARIES: dict[str, tuple[str, int]] = {}


class SentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (asks the Sentinels which node to connect to) that blocks
    for a free connection like the URL mode's pool. A primary's pool notes each change of
    primary (``agentfleet_state_failovers_total``, ``agentfleet_state_primary``)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        #: The key in ``_PRIMARIES``, e.g. ``mymaster@10.0.0.1:26379,10.0.0.2:26379``.
        self._watch: str = kwargs.pop("watch", service_name)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]

    async def get_master_address(self) -> tuple[str, int]:
        address: tuple[str, int] = await super().get_master_address()  # type: ignore[no-untyped-call]
        previous = _PRIMARIES.get(self._watch)
        if self.is_master and address != previous:
            _PRIMARIES[self._watch] = address
            if previous is not None:
                STATE_FAILOVERS.inc()
                with contextlib.suppress(KeyError):
                    STATE_PRIMARY.remove(_address(previous))
                log.warning(
                    "redis sentinel: the primary of %s is now %s (was %s)",
                    self.service_name,
                    _address(address),
                    _address(previous),
                )
            STATE_PRIMARY.labels(_address(address)).set(1)
        return address


def _address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


class ReplicaPipeline(Pipeline):
    """A non-transactional pipeline on a replica: executes only if every queued command
    is read-only."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        for args, _ in self.command_stack:
            _require_read(args)
        return await super().execute(raise_on_error)


def _require_read(args: tuple[Any, ...]) -> None:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    if name.upper() not in REPLICA_COMMANDS:
        raise PrimaryRequiredError(f"{name} needs the primary (reads go to a replica now)")


class PrimaryRedis(aioredis.Redis):
    """The primary's client. It owns the replica's client and the Sentinel connections
    (closed with it); inside :meth:`ReplicaReads.run` read-only commands and read-only
    pipelines run on the replica, anything else raises :class:`PrimaryRequiredError`."""

    replica: aioredis.Redis | None = None
    sentinels: Sentinel | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        replica = self.replica
        if replica is None or _ON_REPLICA.get() is not self:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        _require_read(args)
        return await replica.execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        replica = self.replica
        if replica is None or _ON_REPLICA.get() is not self:
            return super().pipeline(transaction, shard_hint)
        if transaction:
            raise PrimaryRequiredError("a transaction needs the primary (reads go to a replica)")
        return ReplicaPipeline(replica.connection_pool, replica.response_callbacks, False, None)

    def set_retry(self, retry: Retry) -> None:
        super().set_retry(retry)
        if self.replica is not None:
            self.replica.set_retry(retry)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.replica is not None:
            await self.replica.aclose()
        if self.sentinels is not None:
            await self.sentinels.aclose()


def connect_sentinel(sentinel: SentinelSettings, options: dict[str, Any]) -> PrimaryRedis:
    """The primary's client through Sentinel (``master_for``), with a replica's
    (``slave_for``) for reads while the primary is unavailable, unless switched off.
    ``options``: the data nodes' pool and connection options."""
    secret = sentinel.password.get_secret_value() if sentinel.password else None
    manager = Sentinel(  # type: ignore[no-untyped-call]
        sentinel.hosts(),
        sentinel_kwargs={
            "socket_timeout": sentinel.socket_timeout_seconds,
            "socket_connect_timeout": sentinel.socket_timeout_seconds,
            "username": sentinel.username,
            "password": secret,
            # no retries on one Sentinel: asking the next one is the retry
            "retry": Retry(NoBackoff(), 0),
        },
    )
    nodes: dict[str, Any] = {
        **options,
        "db": sentinel.db,
        "username": sentinel.redis_username,
        "password": (
            sentinel.redis_password.get_secret_value() if sentinel.redis_password else None
        ),
    }
    primary = manager.master_for(
        sentinel.service_name,
        redis_class=PrimaryRedis,
        connection_pool_class=SentinelPool,
        watch=f"{sentinel.service_name}@{','.join(sorted(sentinel.addresses))}",
        **nodes,
    )
    assert isinstance(primary, PrimaryRedis)
    primary.sentinels = manager
    if sentinel.replica_reads:
        primary.replica = manager.slave_for(
            sentinel.service_name, connection_pool_class=SentinelPool, **nodes
        )
    return primary


class ReplicaReads:
    """Runs store calls with ``client``'s commands on its replica: the degraded mode's
    way to serve reads while the primary is unavailable (down, failing over, breaker
    open). A call that writes fails unsent; replicas lag the primary a little (Redis
    replication is asynchronous), so a read served here may miss the latest writes."""

    def __init__(self, client: PrimaryRedis) -> None:
        self.client = client

    @classmethod
    def of(cls, client: aioredis.Redis) -> ReplicaReads | None:
        if isinstance(client, PrimaryRedis) and client.replica is not None:
            return cls(client)
        return None

    async def run[T](self, call: Callable[[], Awaitable[T]]) -> T:
        token = _ON_REPLICA.set(self.client)
        try:
            result = await call()
        except Exception as exc:
            cause = exc if isinstance(exc, PrimaryRequiredError) else exc.__cause__
            STATE_REPLICA_READS.labels(
                "needs-primary" if isinstance(cause, PrimaryRequiredError) else "failed"
            ).inc()
            raise
        finally:
            _ON_REPLICA.reset(token)
        STATE_REPLICA_READS.labels("served").inc()
        return result


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
        except (RedisConnectionError, ReadOnlyError) as exc:
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
