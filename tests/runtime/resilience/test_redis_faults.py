"""Redis under real faults (a real redis-server, stopped, restarted, stalled): circuit
breaker state shared across replicas with local fallback and resync, the dead-letter
store's in-memory fallback and resync, retries on a fresh connection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from agentfleet_runtime.deadletters import DeadLetter
from agentfleet_runtime.deadletters.redis import RedisDeadLetterStore
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyConnectionError,
    UpstreamServerError,
)
from agentfleet_runtime.resilience import (
    Attempt,
    ManualClock,
    ResilienceRegistry,
    ResilienceSettings,
)
from agentfleet_runtime.resilience.redis import connect, redis_pipeline, run
from agentfleet_runtime.state.redis_client import Keys
from agentfleet_runtime.state.redis_client import connect as state_connect
from agentfleet_runtime.state.redis_stores import RedisBreakerStateStore
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import RedisServer, running_redis

from .conftest import category, make_registry, policy


@pytest.fixture
async def state_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = state_connect(StateSettings(redis_url=redis_server.url, retries=1))
    yield client
    await client.aclose()


def replica(client: aioredis.Redis, clock: ManualClock) -> ResilienceRegistry:
    store = RedisBreakerStateStore(client, Keys("agentfleet", "test"))
    return ResilienceRegistry(
        ResilienceSettings(breaker_sync_interval_seconds=0.5),
        clock=clock,
        breaker_store=store,
        rand=lambda: 1.0,
    )


async def fail(registry: ResilienceRegistry, name: str = "llm:p/m") -> None:
    pipeline = registry.pipeline(name, "llm", policy(llm=category(attempts=1, threshold=2)))

    async def down(_attempt: Attempt) -> str:
        raise UpstreamServerError("down", dependency=name)

    with pytest.raises(UpstreamServerError):
        await pipeline.execute(down)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_an_opening_is_shared_by_every_replica(state_client: aioredis.Redis) -> None:
    clock = ManualClock()
    a, b = replica(state_client, clock), replica(state_client, clock)
    b_breaker = b.pipeline("llm:p/m", "llm", policy(llm=category(threshold=2))).breaker
    await fail(a)
    await fail(a)
    await settle()  # the opening is written in the background
    assert a.find_breaker("llm:p/m").state == "open"
    await b_breaker.sync()
    assert b_breaker.state == "open"
    assert b_breaker.refusing  # b never saw a failure, and calls nothing now
    await a.find_breaker("llm:p/m").reset()  # e.g. a successful probe, or an operator
    await b_breaker.sync()
    assert b_breaker.state == "closed"
    await b_breaker.force_open()
    await a.find_breaker("llm:p/m").sync()
    assert a.find_breaker("llm:p/m").state == "forced-open"
    await a.aclose()
    await b.aclose()


async def test_breakers_work_locally_while_redis_is_down_then_resync(
    redis_server: RedisServer, state_client: aioredis.Redis
) -> None:
    clock = ManualClock()
    a, b = replica(state_client, clock), replica(state_client, clock)
    b_breaker = b.pipeline("llm:p/m", "llm", policy(llm=category(threshold=2))).breaker
    redis_server.stop()
    await fail(a)
    await fail(a)
    await settle()
    breaker = a.find_breaker("llm:p/m")
    assert breaker.state == "open"  # decided locally, Redis or not
    assert breaker.refusing
    redis_server.start()
    await breaker.sync()  # the store answers again: local state is written back
    await b_breaker.sync()
    assert b_breaker.state == "open"
    await a.aclose()
    await b.aclose()


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A Redis that keeps its data across a restart (append-only file, fsync always)."""
    with running_redis("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


async def test_dead_letters_fall_back_to_memory_and_resync(durable_redis: RedisServer) -> None:
    redis_server = durable_redis
    clock = ManualClock()
    registry = make_registry(clock)
    pipeline = redis_pipeline(
        registry, policy(database=category(attempts=2, threshold=2, recovery=5, base_delay=0))
    )
    client = connect(redis_server.url, connect_timeout=0.5)
    store = RedisDeadLetterStore(client, pipeline, tenant="t", resync_interval=3600)

    def letter(n: int) -> DeadLetter:
        return DeadLetter(
            agent="a",
            session_id="s",
            turn_id=f"turn_{n}",
            content=f"message {n}",
            type="t",
            title="t",
            detail="d",
            error_class="timeout",
        )

    await store.add(letter(1))
    redis_server.stop()
    await store.add(letter(2))
    await store.add(letter(3))
    assert store.pending_resync == 2
    assert pipeline.breaker.state == "open"  # Redis down: the breaker opened
    with pytest.raises(CircuitOpenError):
        await run(pipeline, client.ping)
    listed = await store.list()  # what this process keeps, while Redis is down
    assert [item.turn_id for item in listed] == ["turn_3", "turn_2"]
    redis_server.start()
    clock.advance(6)
    assert await store.resync() == 2
    assert store.pending_resync == 0
    assert pipeline.breaker.state == "closed"
    assert [item.turn_id for item in await store.list()] == ["turn_3", "turn_2", "turn_1"]
    await store.aclose()
    await client.aclose()


async def test_a_lost_connection_is_retried_on_a_fresh_connection(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url, connect_timeout=0.5)
    await client.set("k", "v")  # a pooled connection now exists
    redis_server.stop()

    class RestartWhileWaiting(ManualClock):
        async def sleep(self, seconds: float) -> None:
            if not redis_server.running:
                redis_server.start()
            await super().sleep(seconds)

    clock = RestartWhileWaiting()
    registry = make_registry(clock)
    pipeline = redis_pipeline(registry, policy(database=category(attempts=3, base_delay=0.01)))
    # Attempt 1 fails on the dead pooled connection; the retry takes a fresh one.
    assert await run(pipeline, client.ping) is True
    assert len(clock.slept) == 1
    await client.aclose()


async def test_a_stalled_server_times_out_and_is_retried() -> None:
    with running_redis("--enable-debug-command", "yes") as server:
        client = connect(server.url, socket_timeout=0.3, connect_timeout=0.5)
        registry = ResilienceRegistry(ResilienceSettings(), rand=lambda: 1.0)
        pipeline = redis_pipeline(
            registry, policy(database=category(attempts=3, base_delay=0.6, timeout=2))
        )
        await client.ping()

        def stall() -> None:
            import redis

            redis.Redis.from_url(server.url).execute_command("DEBUG", "SLEEP", "0.5")

        staller = threading.Thread(target=stall)
        staller.start()
        await asyncio.sleep(0.05)
        # times out (socket timeout 0.3 s) while the server sleeps; the retry, 0.6 s later,
        # gets a fresh connection and an answer
        assert await run(pipeline, lambda: client.set("k", "v")) is True
        staller.join()
        await client.aclose()


async def test_connection_errors_are_translated() -> None:
    registry = ResilienceRegistry(ResilienceSettings())
    pipeline = redis_pipeline(registry, policy(database=category(attempts=1)))
    client = connect("redis://127.0.0.1:1/0", connect_timeout=0.2)
    with pytest.raises(DependencyConnectionError):
        await run(pipeline, client.ping)
    await client.aclose()


async def test_an_exhausted_pool_opens_the_breaker_and_letters_stay_in_memory(
    redis_server: RedisServer,
) -> None:
    clock = ManualClock()
    registry = make_registry(clock)
    pipeline = redis_pipeline(
        registry, policy(database=category(attempts=2, threshold=2, base_delay=0))
    )
    client = connect(redis_server.url, max_connections=1)
    store = RedisDeadLetterStore(client, pipeline, tenant="t", resync_interval=3600)
    blocker = asyncio.create_task(client.blpop(["nothing"], timeout=1))  # holds the pool
    await asyncio.sleep(0.05)
    letter = DeadLetter(
        agent="a",
        session_id="s",
        turn_id="turn_1",
        content="hi",
        type="t",
        title="t",
        detail="d",
        error_class="timeout",
    )
    await store.add(letter)  # pool exhausted: overload, retried, then kept in memory
    assert store.pending_resync == 1
    assert pipeline.breaker.state == "open"
    await blocker
    clock.advance(31)
    assert await store.resync() == 1
    assert [item.turn_id for item in await store.list()] == ["turn_1"]
    await store.aclose()
    await client.aclose()
