"""The tenant quotas' and idempotency keys' Redis stores behind the ``redis`` breaker,
against a real redis-server stopped and restarted: while Redis is down quotas fail
*open* (allowed, logged, ``agentfleet_quota_fail_open_total``) and a request carrying an
``Idempotency-Key`` is refused with 503 ``state-unavailable`` — both fast, nothing waits
on the dead server."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from agentfleet_runtime.config import TenancySettings
from agentfleet_runtime.resilience import ManualClock, ResilienceSettings
from agentfleet_runtime.state.fallback import StateUnavailableError
from agentfleet_runtime.state.idempotency import IdempotencyRecord
from agentfleet_runtime.tenants import TenantQuotas
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import RedisServer

from .conftest import category, failing_fast_redis, make_registry, policy
from .test_runtime import ADMIN, runtime
from .test_state_degraded import durable_redis, guarded_state

__all__ = ["durable_redis"]  # a fixture: Redis keeping its data across a restart


def fail_open(operation: str) -> float:
    value = REGISTRY.get_sample_value("agentfleet_quota_fail_open_total", {"operation": operation})
    return value or 0.0


async def test_quotas_fail_open_and_idempotency_fails_fast_while_redis_is_down(
    redis_server: RedisServer,
) -> None:
    clock = ManualClock()
    async with guarded_state(redis_server, make_registry(clock)) as state:
        quotas, keys = state.quotas, state.idempotency
        assert await quotas.take_slot("turns:t", "s/1", limit=1, ttl_seconds=60) == (True, 1)
        assert await quotas.take_slot("turns:t", "s/2", limit=1, ttl_seconds=60) == (False, 1)
        assert await quotas.add("tokens:t", 5, ttl_seconds=60) == 5
        assert await keys.reserve("k", IdempotencyRecord(fingerprint="f"), ttl_seconds=60) is None

        redis_server.stop()
        before = {op: fail_open(op) for op in ("take_slot", "get", "add", "lock")}
        loop = asyncio.get_running_loop()
        started = loop.time()
        # fail open: a slot is granted, counters read 0, adds are lost, the lock is skipped
        assert await quotas.take_slot("turns:t", "s/2", limit=1, ttl_seconds=60) == (True, 0)
        assert await quotas.get("tokens:t") == 0
        assert await quotas.add("tokens:t", 5, ttl_seconds=60) == 0
        async with quotas.lock("sessions:t", wait_seconds=5):
            pass
        assert await quotas.release_slots("turns:t", "s/") == 0
        with pytest.raises(StateUnavailableError):  # idempotency: refused, not guessed
            await keys.reserve("k2", IdempotencyRecord(fingerprint="f"), ttl_seconds=60)
        assert loop.time() - started < 2.0  # nothing waited on the dead server
        for op in ("take_slot", "get", "add", "lock"):
            assert fail_open(op) > before[op], op

        redis_server.start()
        clock.advance(31)  # the breaker lets a probe through
        # counted again, on Redis (the store was emptied by the restart)
        assert await quotas.take_slot("turns:t", "s/1", limit=1, ttl_seconds=60) == (True, 1)
        assert await quotas.take_slot("turns:t", "s/2", limit=1, ttl_seconds=60) == (False, 1)
        assert await keys.reserve("k2", IdempotencyRecord(fingerprint="f"), ttl_seconds=60) is None


async def test_turns_run_and_keyed_creations_are_refused_while_redis_is_down(
    fake_provider: RunningFakeProvider, durable_redis: RedisServer
) -> None:
    state = failing_fast_redis(durable_redis.url)
    async with runtime(
        fake_provider,
        policy(llm=category(attempts=1)),
        state=state,
        resilience=ResilienceSettings(admin_token=ADMIN),
        tenancy=TenancySettings(
            default_quotas=TenantQuotas(max_concurrent_turns=1, tokens_per_day=10_000_000)
        ),
    ) as rt:
        session = await rt.session()
        assert (await rt.say(session, "2+2?")).status_code == 200
        durable_redis.stop()
        before = fail_open("take_slot")
        answer = await rt.say(session, "3+3?")  # quotas unknown: allowed (fail open)
        assert answer.status_code == 200, answer.text
        assert fail_open("take_slot") > before
        keyed = await rt.client.post(
            "/api/v1/sessions", json={"agent": "calc"}, headers={"Idempotency-Key": "k-1"}
        )
        assert keyed.status_code == 503, keyed.text
        assert keyed.json()["type"].endswith("/state-unavailable")
        assert "retry-after" in keyed.headers
        durable_redis.start()
        reset = await rt.client.post("/api/v1/admin/breakers/redis/reset", headers=rt.admin())
        assert reset.status_code == 200, reset.text
        created = await rt.client.post(
            "/api/v1/sessions", json={"agent": "calc"}, headers={"Idempotency-Key": "k-1"}
        )
        assert created.status_code == 201, created.text
        replayed = await rt.client.post(
            "/api/v1/sessions", json={"agent": "calc"}, headers={"Idempotency-Key": "k-1"}
        )
        assert replayed.json()["id"] == created.json()["id"]
