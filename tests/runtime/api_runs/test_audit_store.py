"""The audit store contract, on memory and on a real redis-server (newest first, tenant
streams, filters, the cap), and the background writer: recording never waits for the
store, and events survive a Redis outage in memory until Redis answers again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet_runtime.audit import AuditEvent, AuditLog, AuditQuery
from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.state.audit_store import (
    AUDIT_WRITE_FAILURES,
    AuditStore,
    AuditWriter,
    MemoryAuditStore,
    RedisAuditStore,
)
from agentfleet_runtime.state.redis_client import Keys, connect
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis: RedisServer) -> AsyncIterator[AuditStore]:
    if request.param == "memory":
        yield MemoryAuditStore(100)
        return
    client = connect(StateSettings(redis_url=redis.url))
    try:
        yield RedisAuditStore(client, Keys("t", "ns"), max_events=100)
    finally:
        await client.aclose()


def event(
    action: str, minute: int, tenant: str | None = "a", outcome: str = "ok", actor: str = "alice"
) -> AuditEvent:
    fields: dict[str, object] = {"actor": actor, "subject": "x"}
    if tenant is not None:
        fields["tenant"] = tenant
    return AuditEvent(
        action=action, outcome=outcome, fields=fields, at=T0 + timedelta(minutes=minute)
    )


async def test_lists_newest_first_per_tenant_with_filters(store: AuditStore) -> None:
    await store.append(
        [
            event("api_key.created", 0),
            event("api_key.revoked", 1, actor="bob"),
            event("agent.created", 2, tenant="b"),
            event("auth.failed", 3, tenant=None, outcome="denied"),
            event("agent.deleted", 4, outcome="failed"),
        ]
    )
    mine = await store.list(AuditQuery(tenant="a"))
    assert [e.action for e in mine] == ["agent.deleted", "api_key.revoked", "api_key.created"]
    assert mine[0].fields["actor"] == "alice"
    assert mine[0].at == T0 + timedelta(minutes=4)
    operator = await store.list(AuditQuery(tenant="a", untenanted=True))
    assert "auth.failed" in [e.action for e in operator]
    assert [e.action for e in await store.list(AuditQuery(tenant="b"))] == ["agent.created"]
    assert len(await store.list(AuditQuery())) == 5  # every tenant's

    def actions(**query: object) -> list[str]:
        return [e.action for e in found[str(query)]]

    found: dict[str, list[AuditEvent]] = {}
    for query in (
        {"action": "api_key."},
        {"outcome": "failed"},
        {"actor": "bob"},
        {"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=3)},
    ):
        found[str(query)] = await store.list(AuditQuery(tenant="a", **query))  # type: ignore[arg-type]
    assert actions(action="api_key.") == ["api_key.revoked", "api_key.created"]
    assert actions(outcome="failed") == ["agent.deleted"]
    assert actions(actor="bob") == ["api_key.revoked"]
    assert actions(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == [
        "api_key.revoked"
    ]


async def test_capped(store: AuditStore) -> None:
    # Redis trims with MAXLEN ~ (whole nodes of 100 entries): well past the cap, it trims.
    for chunk in range(6):
        await store.append([event("tick", chunk * 100 + i) for i in range(100)])
    kept = await store.list(AuditQuery(tenant="a"))
    assert 100 <= len(kept) < 600
    assert kept[0].at == T0 + timedelta(minutes=599)  # the newest are the ones kept


async def test_writer_records_in_the_background_and_survives_an_outage(
    redis: RedisServer,
) -> None:
    client = connect(StateSettings(redis_url=redis.url, retries=0, socket_timeout_seconds=0.5))
    store = RedisAuditStore(client, Keys("t", "ns"))
    writer = AuditWriter(retry_seconds=0.05, max_retry_seconds=0.1)
    log = AuditLog()
    log.add_sink(writer)
    writer.start(store)
    try:
        log.record("tenant.created", "ok", tenant="a", subject="acme")
        await _until(lambda: writer.pending == 0)
        assert [e.action for e in await store.list(AuditQuery(tenant="a"))] == ["tenant.created"]

        redis.stop()
        failures = AUDIT_WRITE_FAILURES._value.get()
        started = asyncio.get_running_loop().time()
        log.record("api_key.created", "ok", tenant="a", subject="k1")  # does not wait, nor fail
        assert asyncio.get_running_loop().time() - started < 0.1
        await _until(lambda: AUDIT_WRITE_FAILURES._value.get() > failures)
        assert writer.pending == 1  # kept in memory
        with pytest.raises(DependencyError):
            await writer.list(AuditQuery(tenant="a"))

        redis.restart()
        await _until(lambda: writer.pending == 0, within=10)
        listed = await writer.list(AuditQuery(tenant="a"))
        assert [e.action for e in listed] == ["api_key.created"]  # fresh server: only the new
    finally:
        await writer.aclose()
        await client.aclose()


async def test_writer_lists_what_it_has_not_written_yet() -> None:
    class Slow(MemoryAuditStore):
        gate = asyncio.Event()

        async def append(self, events: object) -> None:
            await self.gate.wait()
            await super().append(events)  # type: ignore[arg-type]

    store = Slow()
    writer = AuditWriter()
    writer.start(store)
    try:
        writer(event("agent.created", 0))
        await asyncio.sleep(0.01)
        assert [e.action for e in await writer.list(AuditQuery(tenant="a"))] == ["agent.created"]
        assert await store.list(AuditQuery()) == []
        Slow.gate.set()
        await _until(lambda: writer.pending == 0)
        assert len(await writer.list(AuditQuery(tenant="a"))) == 1  # not twice
    finally:
        await writer.aclose()


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (polling another task's progress)
            await asyncio.sleep(0.02)
