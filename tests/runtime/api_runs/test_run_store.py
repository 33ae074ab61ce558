"""The RunStore contract, on memory and on a real redis-server: whole-record writes,
create-if-absent, filters, the per-session cap, deletion with the session, expired
records leaving the index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet_runtime.state.redis_client import Keys, connect
from agentfleet_runtime.state.runs import (
    MemoryRunStore,
    RedisRunStore,
    RunFilter,
    RunRecord,
    RunStatus,
    RunStore,
)
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis: RedisServer) -> AsyncIterator[RunStore]:
    if request.param == "memory":
        yield MemoryRunStore(max_per_session=3)
        return
    client = connect(StateSettings(redis_url=redis.url))
    keys = Keys("test", f"t{uuid.uuid4().hex[:8]}")
    try:
        yield RedisRunStore(client, keys, ttl_seconds=60, max_per_session=3)
    finally:
        await client.aclose()


def run(n: int, session: str = "s1", **fields: object) -> RunRecord:
    values: dict[str, object] = {
        "id": f"turn_{session}_{n}",
        "session_id": session,
        "agent": "calc",
        "created_at": T0 + timedelta(seconds=n),
    }
    return RunRecord.model_validate(values | fields)


async def test_put_get_and_create_if_absent(store: RunStore) -> None:
    assert await store.get("nope") is None
    assert await store.create(run(1))
    running = run(1, status=RunStatus.RUNNING, started_at=T0)
    await store.put(running)
    assert not await store.create(run(1))  # a late "queued" never overwrites
    got = await store.get("turn_s1_1")
    assert got == running


async def test_filters_order_and_cap(store: RunStore) -> None:
    await store.put(run(1, status=RunStatus.COMPLETED))
    await store.put(run(2, agent="other", status=RunStatus.FAILED))
    await store.put(run(3, session="s2", tenant="acme"))
    listed = await store.list()
    assert [r.id for r in listed] == ["turn_s1_1", "turn_s1_2", "turn_s2_3"]
    assert [r.id for r in await store.list(RunFilter(agent="other"))] == ["turn_s1_2"]
    assert [r.id for r in await store.list(RunFilter(status=RunStatus.COMPLETED))] == ["turn_s1_1"]
    assert [r.id for r in await store.list(RunFilter(tenant="acme"))] == ["turn_s2_3"]
    assert [r.id for r in await store.list(RunFilter(session_id="s2"))] == ["turn_s2_3"]
    window = await store.list(
        RunFilter(created_after=T0 + timedelta(seconds=2), created_before=T0 + timedelta(seconds=3))
    )
    assert [r.id for r in window] == ["turn_s1_2"]
    for n in range(4, 7):  # s1 now has 5 runs: the cap (3) drops the two oldest
        await store.put(run(n))
    assert [r.id for r in await store.list(RunFilter(session_id="s1"))] == [
        "turn_s1_4",
        "turn_s1_5",
        "turn_s1_6",
    ]
    assert await store.get("turn_s1_1") is None


async def test_deleted_with_the_session(store: RunStore) -> None:
    await store.put(run(1))
    await store.put(run(2, session="s2"))
    await store.delete_session("s1")
    assert await store.get("turn_s1_1") is None
    assert [r.id for r in await store.list()] == ["turn_s2_2"]


async def test_redis_index_forgets_expired_records(redis: RedisServer) -> None:
    client = connect(StateSettings(redis_url=redis.url))
    keys = Keys("test", f"t{uuid.uuid4().hex[:8]}")
    try:
        store = RedisRunStore(client, keys, ttl_seconds=60)
        await store.put(run(1))
        await store.put(run(2))
        await client.delete(f"{keys.base}:run:turn_s1_1")  # as if its TTL ran out
        assert [r.id for r in await store.list()] == ["turn_s1_2"]
        assert await client.zcard(f"{keys.base}:runs") == 1
        assert 0 < await client.ttl(f"{keys.base}:run:turn_s1_2") <= 60
    finally:
        await client.aclose()
