"""Redis through Sentinel, with real processes (a primary, a replica, a Sentinel:
``agentfleet_runtime.testing.redis.running_sentinel``): the runtime works on it; when the
primary is killed, reads are served from the replica, writes are kept in memory
(degraded mode) or refused with ``state-unavailable``, and after Sentinel promotes the
replica writes resume on it with nothing lost; a READONLY from a demoted primary makes
the client reconnect to the new one. The pool-exhausted scenario (breaker + in-memory
fallback) is tested in tests/runtime/resilience/test_state_degraded.py."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, cast

import httpx2
import pytest
import redis
from prometheus_client import REGISTRY

from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec
from agentfleet_crds.v1alpha1.resiliencepolicy import (
    CategoryPolicy,
    CircuitBreakerOptions,
    ResiliencePolicySpec,
    RetryOptions,
)
from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.app import create_app
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.resilience import ResilienceRegistry, ResilienceSettings
from agentfleet_runtime.resilience.redis import redis_pipeline
from agentfleet_runtime.state.base import SessionRecord
from agentfleet_runtime.state.factory import StateBackend, open_state
from agentfleet_runtime.state.fallback import StateUnavailableError
from agentfleet_runtime.state.settings import SentinelSettings, StateSettings
from agentfleet_runtime.tenants import TenantRecord
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    SentinelSetup,
    redis_server_path,
    running_redis,
    running_sentinel,
)
from agentfleet_runtime.testing.servers import free_port, running_server

#: Two attempts per call, the breaker opens after 2 failures and probes after 1 s.
DATABASE = ResiliencePolicySpec(
    database=CategoryPolicy(
        timeout_seconds=1.0,
        retry=RetryOptions(max_attempts=2, base_delay_seconds=0.01, jitter="none"),
        circuit_breaker=CircuitBreakerOptions(failure_threshold=2, recovery_timeout_seconds=1),
    )
)


@pytest.fixture
def setup() -> Iterator[SentinelSetup]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    # 2 s before the Sentinel calls the primary down: room for the reads and writes of
    # the gap; the whole failover then takes about 3-4 s
    with running_sentinel(down_after_ms=2000) as started:
        yield started


def sentinel_state(setup: SentinelSetup, tenant: str) -> StateSettings:
    # the first Sentinel listed answers nothing: the client asks the next one
    dead = f"127.0.0.1:{free_port()}"
    return StateSettings(
        backend="redis",
        sentinel=SentinelSettings(addresses=[dead, *setup.addresses], service_name=setup.service),
        tenant=tenant,
        connect_timeout_seconds=0.5,
        socket_timeout_seconds=1.0,
    )


@contextlib.asynccontextmanager
async def guarded_state(settings: StateSettings) -> AsyncIterator[StateBackend]:
    """One runtime replica's state: its own breaker (a real clock), no background resync."""
    async with open_state(settings) as state:
        registry = ResilienceRegistry(ResilienceSettings(), environment="production")
        state.attach_resilience(redis_pipeline(registry, DATABASE), enabled=lambda: True)
        assert state.degraded is not None
        state.degraded.resync_interval = 3600  # the test resyncs explicitly
        yield state


def degraded(state: StateBackend) -> bool:
    """Whether writes of ``state`` are kept in memory (a call: not narrowed by mypy)."""
    return state.degraded is not None and state.degraded.degraded


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def node(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


def event_ids(port: int, tenant: str, session: str) -> list[int]:
    with node(port) as client:
        entries: Any = client.xrange(f"agentfleet:{tenant}:s:{{{session}}}:events")
    return [int(entry_id.decode().split("-")[0]) for entry_id, _ in entries]


async def test_a_session_and_a_turn_on_redis_through_sentinel(
    fake_provider: RunningFakeProvider, setup: SentinelSetup
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    spec = AgentSpec.model_validate(
        {"model": {"provider": "fake", "name": "fake-model", "baseUrl": fake_provider.url}}
    )
    config = RuntimeConfig(agents=[AgentConfig(name="calc", namespace="team-a", spec=spec)])
    settings = RuntimeSettings(log_format="console", state=sentinel_state(setup, tenant))
    app = create_app(settings, runtime_config=config)
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        created = await client.post("/api/v1/sessions", json={"agent": "calc"})
        assert created.status_code == 201, created.text
        session = created.json()["id"]
        answer = await client.post(f"/api/v1/sessions/{session}/messages", json={"content": "2+2?"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["answer"]["content"]
        events = (await client.get(f"/api/v1/sessions/{session}/events")).json()["items"]
        assert (events[0]["type"], events[-1]["type"]) == ("turn.started", "turn.completed")
        metrics = (await client.get("/metrics")).text
        assert f'agentfleet_state_primary{{address="127.0.0.1:{setup.primary.port}"}} 1.0' in (
            metrics
        )
    # written on the primary Sentinel named, and replicated
    assert event_ids(setup.primary.port, tenant, session) == [e["id"] for e in events]
    setup.sync_replica()
    assert event_ids(setup.replica.port, tenant, session) == [e["id"] for e in events]


async def test_primary_down_reads_from_the_replica_and_writes_resume_after_failover(
    setup: SentinelSetup,
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    old, new = setup.primary.port, setup.replica.port
    # two runtime replicas: "writer" runs the session's turns; "reader" has never seen it
    settings = sentinel_state(setup, tenant)
    async with guarded_state(settings) as writer, guarded_state(settings) as reader:
        wmode, rmode = writer.degraded, reader.degraded
        assert wmode is not None
        assert rmode is not None
        await writer.sessions.put(SessionRecord(id="s1", agent="calc", tenant="acme"))
        await writer.events.append("s1", "turn_1", "turn.started", {}, seq=1)
        await writer.events.append("s1", "turn_1", "turn.completed", {"answer": "4"}, seq=2)
        await writer.tenants.put(TenantRecord(id="acme"))
        await asyncio.to_thread(setup.sync_replica)
        failovers = sample("agentfleet_state_failovers_total")

        setup.primary.stop()  # SIGKILL
        served = sample("agentfleet_state_replica_reads_total", outcome="served")
        # reads: from the replica (the reader has nothing of this in memory)
        record = await reader.sessions.get("s1")
        assert record is not None
        assert record.tenant == "acme"
        assert [e["id"] for e in await reader.events.read("s1")] == [1, 2]
        assert await reader.events.last_id("s1") == 2
        assert [s.id for s in await reader.sessions.list(tenant="acme")] == ["s1"]
        assert [t.id for t in await reader.tenants.list()] == ["acme"]
        assert sample("agentfleet_state_replica_reads_total", outcome="served") >= served + 5
        assert not rmode.degraded  # nothing kept in memory for reads
        # writes: refused with a retryable 503 state-unavailable...
        with pytest.raises(StateUnavailableError) as refused:
            await reader.tenants.put(TenantRecord(id="globex"))
        assert refused.value.status == 503
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1
        assert sample("agentfleet_state_replica_reads_total", outcome="needs-primary") >= 1
        # ...or, on the turn path of a session this replica runs, kept in memory
        third = await writer.events.append("s1", "turn_2", "turn.started", {}, seq=1)
        assert third["id"] == 3
        assert degraded(writer)
        assert len(wmode.journal) == 1
        assert setup.primary_port() == old, "the failover ended before the gap was tested"

        await asyncio.to_thread(setup.wait_for_primary, new)
        # writes resume on the promoted replica once the breaker's probe goes through
        for _ in range(100):
            try:
                await reader.tenants.put(TenantRecord(id="globex"))
                break
            except StateUnavailableError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("writes did not resume after the failover")
        for _ in range(100):
            await wmode.resync()
            if not degraded(writer):
                break
            await asyncio.sleep(0.1)
        assert not degraded(writer)
        assert await writer.events.last_id("s1") == 3
        updated = await writer.sessions.update("s1", lambda r: setattr(r, "turns", 2))
        assert updated is not None
        assert updated.turns == 2
        assert {t.id for t in await writer.tenants.list()} == {"acme", "globex"}
        # live events flow again: the reader's Pub/Sub connection found the new primary
        follower = cast(AsyncGenerator[TurnEvent], reader.events.follow("s1", after=3))

        async def first() -> dict[str, Any]:
            return dict(await anext(follower))

        live = asyncio.create_task(first())
        await asyncio.sleep(0.3)  # caught up (nothing after 3): waiting for live events
        await writer.events.append("s1", "turn_2", "turn.completed", {}, seq=2)
        assert (await asyncio.wait_for(live, 10))["id"] == 4
        await follower.aclose()
    # on the new primary: what was written before the kill, during the gap and after
    assert event_ids(new, tenant, "s1") == [1, 2, 3, 4]
    with node(new) as client:
        raw = client.get(f"agentfleet:{tenant}:s:{{s1}}:record")
    assert raw is not None
    assert SessionRecord.model_validate_json(raw).turns == 2
    assert sample("agentfleet_state_failovers_total") == failovers + 1  # once per process
    assert sample("agentfleet_state_primary", address=f"127.0.0.1:{new}") == 1
    assert REGISTRY.get_sample_value(
        "agentfleet_state_primary", {"address": f"127.0.0.1:{old}"}
    ) in (
        None,
        0.0,
    )


def synced(port: int) -> bool:
    with node(port) as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def readonly_errors(port: int) -> int:
    with node(port) as client:
        stats: dict[str, Any] = client.info("errorstats")
    return int(stats.get("errorstat_READONLY", {}).get("count", 0))


async def test_a_readonly_from_a_demoted_primary_reconnects_to_the_new_one(
    setup: SentinelSetup,
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    old, new = setup.primary.port, setup.replica.port
    async with guarded_state(sentinel_state(setup, tenant)) as state:
        mode = state.degraded
        assert mode is not None
        await state.sessions.put(SessionRecord(id="s1", agent="calc"))
        await state.events.append("s1", "turn_1", "turn.started", {}, seq=1)
        await asyncio.to_thread(setup.sync_replica)
        # swap the roles by hand (no Sentinel failover: it would kill our connections) and
        # tell the Sentinel: the client's pooled connections still point at the old primary
        with node(new) as client:
            client.replicaof("NO", "ONE")
        with node(old) as client:
            client.replicaof("127.0.0.1", new)
        with setup.sentinels[0].client() as sentinel:
            sentinel.sentinel_remove(setup.service)
            sentinel.sentinel_monitor(setup.service, "127.0.0.1", new, 1)
        await asyncio.to_thread(setup.wait_for_primary, new)
        await asyncio.to_thread(setup.wait_for, lambda: synced(old), "the old primary syncing")
        with node(old) as client, pytest.raises(redis.ReadOnlyError):
            client.set("probe", "1")
        before = readonly_errors(old)

        second = await state.events.append("s1", "turn_1", "turn.completed", {}, seq=2)
        assert second["id"] == 2
        updated = await state.sessions.update("s1", lambda r: setattr(r, "turns", 1))
        assert updated is not None
        assert updated.turns == 1
        assert readonly_errors(old) > before  # the client did meet the READONLY...
        assert not mode.degraded  # ...and reconnected: nothing kept in memory, no 503
        after = readonly_errors(old)
        for seq in (1, 2, 3):  # it stays on the new primary: no READONLY again, no loop
            await state.events.append("s1", "turn_2", "turn.delta", {}, seq=seq)
        assert readonly_errors(old) == after
    assert event_ids(new, tenant, "s1") == [1, 2, 3, 4, 5]
    assert sample("agentfleet_state_primary", address=f"127.0.0.1:{new}") == 1


async def test_a_primary_and_replica_pair_without_sentinel_serves_reads_from_the_replica() -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    with (
        running_redis("--appendonly", "yes", "--appendfsync", "always") as primary,
        running_redis("--replicaof", "127.0.0.1", str(primary.port)) as replica,
    ):
        setup = SentinelSetup(primary, replica, sentinels=[])
        await asyncio.to_thread(setup.wait_for, lambda: synced(replica.port), "replica in sync")
        settings = StateSettings(
            backend="redis",
            redis_url=primary.url,
            replica_url=replica.url,
            tenant=tenant,
            connect_timeout_seconds=0.5,
            socket_timeout_seconds=1.0,
        )
        async with open_state(settings) as state:
            registry = ResilienceRegistry(ResilienceSettings(), environment="production")
            state.attach_resilience(redis_pipeline(registry, DATABASE), enabled=lambda: True)
            await state.sessions.put(SessionRecord(id="s1", agent="calc"))
            await asyncio.to_thread(setup.sync_replica)
            primary.stop()
            served = sample("agentfleet_state_replica_reads_total", outcome="served")
            record = await state.sessions.get("s1")
            assert record is not None
            assert [s.id for s in await state.sessions.list()] == ["s1"]  # refused otherwise
            assert sample("agentfleet_state_replica_reads_total", outcome="served") == served + 2
            with pytest.raises(StateUnavailableError):
                await state.agents.delete("calc")  # a write: needs the primary
            primary.start()  # same port, its append-only file: the data is back
            for _ in range(100):
                try:
                    await state.tenants.put(TenantRecord(id="acme"))
                    break
                except StateUnavailableError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("writes did not resume when the primary came back")
        with node(primary.port) as client:
            assert client.get(f"agentfleet:{tenant}:s:{{s1}}:record") is not None
            assert client.hexists(f"agentfleet:{tenant}:tenants", "acme")
