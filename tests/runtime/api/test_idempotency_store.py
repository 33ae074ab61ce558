"""The idempotency store port: the same contract on memory and on a real redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from agentfleet_runtime.state.factory import StateBackend, open_state
from agentfleet_runtime.state.idempotency import IdempotencyRecord
from agentfleet_runtime.testing.redis import RedisServer

from .conftest import state_settings


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, shared_redis: RedisServer
) -> AsyncIterator[StateBackend]:
    async with open_state(state_settings(request.param, shared_redis)) as state:
        yield state


def _name() -> str:
    return uuid.uuid4().hex


async def test_reserve_claims_once_then_returns_what_is_stored(backend: StateBackend) -> None:
    store, name = backend.idempotency, _name()
    pending = IdempotencyRecord(fingerprint="f1")
    assert await store.reserve(name, pending, ttl_seconds=30) is None
    again = await store.reserve(name, IdempotencyRecord(fingerprint="f2"), ttl_seconds=30)
    assert again == pending  # the first claim stays, whatever the second sends

    done = IdempotencyRecord(fingerprint="f1", state="done", status=201, body="sealed")
    await store.complete(name, done, ttl_seconds=30)
    assert await store.reserve(name, pending, ttl_seconds=30) == done

    await store.release(name)
    assert await store.reserve(name, pending, ttl_seconds=30) is None


async def test_entries_expire(backend: StateBackend) -> None:
    store, name = backend.idempotency, _name()
    assert await store.reserve(name, IdempotencyRecord(fingerprint="f"), ttl_seconds=0.2) is None
    await asyncio.sleep(0.35)
    assert await store.reserve(name, IdempotencyRecord(fingerprint="g"), ttl_seconds=5) is None
    done = IdempotencyRecord(fingerprint="g", state="done", status=200, body="x")
    await store.complete(name, done, ttl_seconds=0.2)
    await asyncio.sleep(0.35)
    assert await store.reserve(name, IdempotencyRecord(fingerprint="h"), ttl_seconds=5) is None


async def test_concurrent_reservations_let_exactly_one_through(backend: StateBackend) -> None:
    store, name = backend.idempotency, _name()
    outcomes = await asyncio.gather(
        *(
            store.reserve(name, IdempotencyRecord(fingerprint=f"f{i}"), ttl_seconds=30)
            for i in range(25)
        )
    )
    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1
    assert {o.fingerprint for o in outcomes if o is not None} == {f"f{winners[0]}"}


async def test_names_are_separate(backend: StateBackend) -> None:
    store = backend.idempotency
    a, b = _name(), _name()
    assert await store.reserve(a, IdempotencyRecord(fingerprint="a"), ttl_seconds=30) is None
    assert await store.reserve(b, IdempotencyRecord(fingerprint="b"), ttl_seconds=30) is None
