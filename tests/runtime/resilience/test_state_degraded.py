"""The Redis state backend under real faults (a real redis-server stopped, restarted,
stalled, its connection pool held): the stores fail fast behind the ``redis`` breaker,
serve what they can from memory (degraded mode), and write it back in order once Redis
answers again (resync) — event ids stay 1, 2, 3... per session."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry, ResilienceSettings
from agentfleet_runtime.resilience.events import RetryScheduled
from agentfleet_runtime.resilience.redis import redis_pipeline
from agentfleet_runtime.state.base import SessionRecord
from agentfleet_runtime.state.factory import StateBackend, open_state
from agentfleet_runtime.state.fallback import StateUnavailableError
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import RedisServer, running_redis

from .conftest import Recorder, category, failing_fast_redis, make_registry, policy
from .test_runtime import ADMIN, runtime

DATABASE = policy(database=category(attempts=2, threshold=2, base_delay=0, timeout=0.5))


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A Redis that keeps its data across a restart (append-only file, fsync always)."""
    with running_redis("--appendonly", "yes", "--appendfsync", "always") as server:
        yield server


@contextlib.asynccontextmanager
async def guarded_state(
    server: RedisServer,
    registry: ResilienceRegistry,
    spec: ResiliencePolicySpec = DATABASE,
    **settings: Any,
) -> AsyncIterator[StateBackend]:
    options: dict[str, Any] = {
        "tenant": f"t{uuid.uuid4().hex[:8]}",
        "connect_timeout_seconds": 0.5,
        "socket_timeout_seconds": 1.0,
        **settings,
    }
    state_settings = StateSettings(backend="redis", redis_url=server.url, **options)
    async with open_state(state_settings) as state:
        state.attach_resilience(redis_pipeline(registry, spec), enabled=lambda: True)
        assert state.degraded is not None
        state.degraded.resync_interval = 3600  # the tests resync explicitly
        yield state


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def raw_event_ids(server: RedisServer, session: str) -> list[int]:
    """Event ids as Redis has them (read with a client of its own)."""
    client = aioredis.Redis.from_url(server.url)
    try:
        (key,) = [k async for k in client.scan_iter(match=f"*:s:{{{session}}}:events")]
        return [int(i.decode().split("-")[0]) for i, _ in await client.xrange(key)]
    finally:
        await client.aclose()


async def test_redis_down_opens_the_breaker_and_a_known_session_goes_on_in_memory(
    durable_redis: RedisServer,
) -> None:
    clock = ManualClock()
    async with guarded_state(durable_redis, make_registry(clock)) as state:
        mode = state.degraded
        assert mode is not None
        pipeline = mode.pipeline
        assert pipeline is not None
        await state.sessions.put(SessionRecord(id="s1", agent="calc"))
        await state.sessions.put(SessionRecord(id="s2", agent="calc"))  # never used here
        await state.events.append("s1", "turn_1", "turn.started", {}, seq=1)
        await state.events.append("s1", "turn_1", "turn.completed", {}, seq=2)
        assert await state.checkpointer.aget_tuple({"configurable": {"thread_id": "s1"}}) is None
        assert gauge("agentfleet_state_degraded") == 0

        durable_redis.stop()
        started = await state.events.append("s1", "turn_2", "turn.started", {"n": 2}, seq=1)
        assert started["id"] == 3  # continues from the last id this replica saw
        assert pipeline.breaker.state == "open"  # Redis down: the breaker opened
        assert mode.degraded
        assert gauge("agentfleet_state_degraded") == 1
        # the breaker refuses now: nothing waits on a dead server
        loop = asyncio.get_running_loop()
        before = loop.time()
        updated = await state.sessions.update("s1", lambda r: setattr(r, "turns", r.turns + 1))
        assert updated is not None
        assert updated.turns == 1
        acceptance = await state.turns.accept(
            "s1", "hello", idempotency_key="k1", message_id="msg_1"
        )
        assert await state.turns.try_lease("s1", "me", 10)
        claim = await state.turns.next("s1", "me", 10, "c1")
        assert claim is not None
        assert claim.message.turn_id == acceptance.message.turn_id
        await state.events.append("s1", "turn_2", "turn.completed", {"answer": "hi"}, seq=2)
        await state.turns.finish("s1", "me", "c1")
        assert await state.turns.next("s1", "me", 10, "c2") is None  # releases the lease
        assert loop.time() - before < 0.5
        assert [e["id"] for e in await state.events.read("s1", after=2)] == [3, 4]
        assert await state.events.last_id("s1") == 4
        assert (await state.sessions.get("s1")).turns == 1  # type: ignore[union-attr]

        # what this replica never saw, or cannot answer without Redis: a retryable 503
        with pytest.raises(StateUnavailableError) as refused:
            await state.turns.accept("s2", "hi", idempotency_key="k", message_id="msg_2")
        assert refused.value.status == 503
        assert refused.value.retry_after is not None
        with pytest.raises(StateUnavailableError):
            await state.sessions.list()
        with pytest.raises(StateUnavailableError):
            await state.events.read("s1")  # ids 1-2 are in Redis only
        with pytest.raises(StateUnavailableError):
            await state.sessions.delete("s1")

        durable_redis.start()
        clock.advance(31)  # the breaker lets a probe through
        assert await mode.resync() == 4  # event, record, idempotency key, event
        assert not mode.degraded
        assert gauge("agentfleet_state_degraded") == 0
        assert await raw_event_ids(durable_redis, "s1") == [1, 2, 3, 4]
        assert [e["type"] for e in await state.events.read("s1")] == [
            "turn.started",
            "turn.completed",
            "turn.started",
            "turn.completed",
        ]
        assert (await state.sessions.get("s1")).turns == 1  # type: ignore[union-attr]
        # the idempotency key reached Redis: a resend is recognised there
        again = await state.turns.accept("s1", "hello", idempotency_key="k1", message_id="msg_9")
        assert again.duplicate
        assert again.message.turn_id == acceptance.message.turn_id
        assert (
            REGISTRY.get_sample_value(
                "agentfleet_state_resync_writes_total",
                {"operation": "events.append", "outcome": "written"},
            )
            or 0
        ) >= 2


async def test_events_written_elsewhere_meanwhile_are_kept_and_ours_renumbered(
    durable_redis: RedisServer,
) -> None:
    """A split: this replica cannot reach Redis, another one appends to the same session;
    at the resync our events follow theirs and ids stay contiguous."""
    clock = ManualClock()
    tenant = f"t{uuid.uuid4().hex[:8]}"  # the two replicas share it
    async with (
        guarded_state(durable_redis, make_registry(clock), tenant=tenant) as ours,
        guarded_state(durable_redis, make_registry(ManualClock()), tenant=tenant) as other,
    ):
        mode = ours.degraded
        assert mode is not None
        assert mode.pipeline is not None
        await ours.events.append("s", "turn_1", "turn.started", {}, seq=1)
        mode.pipeline.breaker._cb.open()  # cut off (as if unreachable): refuses every call
        local = await ours.events.append("s", "turn_1", "turn.completed", {}, seq=2)
        assert local["id"] == 2
        await other.events.append("s", "turn_x", "turn.started", {}, seq=1)  # id 2 there
        clock.advance(31)
        await mode.resync()
        events = await other.events.read("s")
        assert [e["id"] for e in events] == [1, 2, 3]
        assert [e["turn_id"] for e in events] == ["turn_1", "turn_x", "turn_1"]
        assert (
            REGISTRY.get_sample_value(
                "agentfleet_state_resync_writes_total",
                {"operation": "events.append", "outcome": "renumbered"},
            )
            or 0
        ) >= 1


async def test_an_exhausted_pool_opens_the_breaker_and_the_session_goes_on_in_memory(
    redis_server: RedisServer,
) -> None:
    clock = ManualClock()
    spec = policy(database=category(attempts=2, threshold=2, base_delay=0, timeout=0.2))
    async with guarded_state(
        redis_server, make_registry(clock), spec, max_connections=2, socket_timeout_seconds=3
    ) as state:
        mode = state.degraded
        assert mode is not None
        assert mode.pipeline is not None
        await state.sessions.put(SessionRecord(id="s", agent="calc"))
        await state.events.append("s", "t", "turn.started", {}, seq=1)
        client: aioredis.Redis = state._client
        holders = [
            asyncio.create_task(client.blpop([f"nothing{i}"], timeout=0.6)) for i in range(2)
        ]
        await asyncio.sleep(0.05)  # both connections of the pool are taken
        event = await state.events.append("s", "t", "turn.completed", {}, seq=2)
        assert event["id"] == 2  # in memory: the pool gave no connection in time
        assert mode.pipeline.breaker.state == "open"
        assert "s" in mode.local
        await asyncio.gather(*holders)
        clock.advance(31)
        assert await mode.resync() == 1
        assert [e["id"] for e in await state.events.read("s")] == [1, 2]


async def test_a_stalled_server_times_out_and_is_retried_on_a_fresh_connection() -> None:
    """Connection timeout → retry with a fresh connection, for the state stores."""
    recorder = Recorder()
    registry = ResilienceRegistry(ResilienceSettings(), rand=lambda: 1.0)
    registry.bus.subscribe(recorder)
    spec = policy(database=category(attempts=3, base_delay=0.6, timeout=2))
    with running_redis("--enable-debug-command", "yes") as server:
        async with guarded_state(server, registry, spec, socket_timeout_seconds=0.3) as state:
            await state.sessions.put(SessionRecord(id="s", agent="calc"))

            def stall() -> None:
                import redis

                redis.Redis.from_url(server.url).execute_command("DEBUG", "SLEEP", "0.5")

            staller = threading.Thread(target=stall)
            staller.start()
            await asyncio.sleep(0.05)
            # times out (socket timeout 0.3 s) while the server sleeps; the retry, 0.6 s
            # later, takes a fresh connection and gets the record from Redis itself
            record = await state.sessions.update("s", lambda r: setattr(r, "title", "x"))
            staller.join()
            assert record is not None
            assert record.title == "x"
            assert [e.error_class for e in recorder.of(RetryScheduled)] == ["timeout"]
            assert state.degraded is not None
            assert not state.degraded.degraded  # retried, not degraded


async def test_a_turn_runs_while_redis_is_down_and_is_in_redis_after_the_restart(
    fake_provider: RunningFakeProvider, durable_redis: RedisServer
) -> None:
    state = failing_fast_redis(durable_redis.url)
    async with runtime(
        fake_provider,
        policy(llm=category(attempts=1)),
        state=state,
        resilience=ResilienceSettings(admin_token=ADMIN),
    ) as rt:
        session = await rt.session()
        first = await rt.say(session, "2+2?")
        assert first.status_code == 200, first.text
        seen = (await rt.client.get(f"/api/v1/sessions/{session}/events")).json()["items"]
        last = seen[-1]["id"]
        durable_redis.stop()
        second = await rt.say(session, "3+3?")  # Redis down: runs in memory
        assert second.status_code == 200, second.text
        assert second.json()["answer"]["content"]
        page = await rt.client.get(f"/api/v1/sessions/{session}/events?after={last}")
        events = page.json()["items"]
        assert [e["id"] for e in events] == list(range(last + 1, last + 1 + len(events)))
        assert (events[0]["type"], events[-1]["type"]) == ("turn.started", "turn.completed")
        refused = await rt.client.get("/api/v1/sessions")
        assert refused.status_code == 503
        assert refused.json()["type"].endswith("/state-unavailable")
        assert "retry-after" in refused.headers
        assert (await rt.client.get("/healthz/ready")).status_code == 200  # still serving
        durable_redis.start()
        reset = await rt.client.post("/api/v1/admin/breakers/redis/reset", headers=rt.admin())
        assert reset.status_code == 200, reset.text
        for _ in range(100):  # the resync runs in the background
            metrics = (await rt.client.get("/metrics")).text
            if "agentfleet_state_degraded 0.0" in metrics:
                break
            await asyncio.sleep(0.05)
        assert "agentfleet_state_degraded 0.0" in metrics
        messages = (await rt.client.get(f"/api/v1/sessions/{session}/messages")).json()
        assert len(messages["items"]) >= 4
    # a fresh look at Redis: both turns, ids contiguous, the session's record up to date
    ids = await raw_event_ids(durable_redis, session)
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) >= 6
    client = aioredis.Redis.from_url(durable_redis.url)
    try:
        (key,) = [k async for k in client.scan_iter(match=f"*:s:{{{session}}}:record")]
        record = SessionRecord.model_validate_json(await client.get(key))
    finally:
        await client.aclose()
    assert record.turns == 2
