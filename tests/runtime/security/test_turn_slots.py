"""The slots behind ``max_concurrent_turns`` (``QuotaStore.take_slot``/``release_slots``)
on memory and on a real redis-server: atomic under concurrency, renewable without a
limit, freed by prefix (a session's), and expiring (a dead replica's slots time out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentfleet_runtime.state.factory import open_state
from agentfleet_runtime.state.quotas import QuotaStore
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.tenants import TenantQuotaExceededError, TenantQuotaGuard, TenantQuotas


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[QuotaStore]:
    settings = StateSettings()
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        settings = StateSettings(backend="redis", redis_url=server.url)
    async with open_state(settings) as state:
        yield state.quotas


async def test_slots_are_atomic_renewable_and_freed_by_prefix(store: QuotaStore) -> None:
    results = await asyncio.gather(
        *(store.take_slot("turns:t", f"s{i}/turn", limit=3, ttl_seconds=60) for i in range(12))
    )
    assert sorted(taken for taken, _ in results) == [False] * 9 + [True] * 3
    holders = [f"s{i}/turn" for i, (taken, _) in enumerate(results) if taken]
    # a holder renews its own slot even when full; a newcomer is refused
    assert await store.take_slot("turns:t", holders[0], limit=3, ttl_seconds=60) == (True, 3)
    assert await store.take_slot("turns:t", "x/turn", limit=3, ttl_seconds=60) == (False, 3)
    assert await store.take_slot("turns:t", "x/turn", limit=None, ttl_seconds=60) == (True, 4)
    assert await store.release_slots("turns:t", "x/") == 1
    assert await store.release_slots("turns:t", holders[1].split("/")[0] + "/") == 1
    assert await store.take_slot("turns:t", "y/turn", limit=3, ttl_seconds=60) == (True, 3)
    assert await store.take_slot("turns:other", "y/turn", limit=1, ttl_seconds=60) == (True, 1)


async def test_slots_of_a_dead_holder_expire(store: QuotaStore) -> None:
    assert await store.take_slot("turns:t", "a/1", limit=1, ttl_seconds=0.3) == (True, 1)
    assert await store.take_slot("turns:t", "b/1", limit=1, ttl_seconds=60) == (False, 1)
    await asyncio.sleep(0.5)
    assert await store.take_slot("turns:t", "b/1", limit=1, ttl_seconds=60) == (True, 1)


async def test_guard_refuses_with_the_quota_and_frees_on_release(store: QuotaStore) -> None:
    from agentfleet_runtime.state.memory import MemoryTenantStore

    guard = TenantQuotaGuard(MemoryTenantStore(), TenantQuotas(max_concurrent_turns=2), store)
    await guard.take_turn("acme", "s1/t1")
    await guard.take_turn("acme", "s1/t2")
    with pytest.raises(TenantQuotaExceededError) as refused:
        await guard.take_turn("acme", "s2/t1")
    assert refused.value.extensions["quota"] == "max_concurrent_turns"
    assert (refused.value.extensions["limit"], refused.value.extensions["used"]) == (2, 2)
    await guard.take_turn("acme", "s1/t1", refresh=True)  # an accepted turn: never refused
    assert await guard.turns_running("acme") == 2
    await guard.release_turns("acme", "s1/")  # the session deleted: both freed
    assert await guard.turns_running("acme") == 0
    await guard.take_turn("acme", "s2/t1")
