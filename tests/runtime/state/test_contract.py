"""One contract for every state backend: memory and real Redis behave the same."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentfleet_crds.v1alpha1 import AgentSpec, ModelProviderName, ModelSpec
from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.state.base import (
    AgentRecord,
    BreakerState,
    IdempotencyConflictError,
    LeaseLostError,
    SessionRecord,
    SessionStatus,
)
from agentfleet_runtime.state.factory import StateBackend

SPEC = AgentSpec(
    system_prompt="test", model=ModelSpec(provider=ModelProviderName.FAKE, name="fake-model")
)


async def test_agents_round_trip(backend: StateBackend) -> None:
    await backend.agents.put(AgentRecord(name="b", spec=SPEC))
    await backend.agents.put(AgentRecord(name="a", spec=SPEC))
    got = await backend.agents.get("a")
    assert got is not None
    assert got.spec == SPEC
    assert [a.name for a in await backend.agents.list()] == ["a", "b"]
    assert await backend.agents.delete("a") is True
    assert await backend.agents.delete("a") is False
    assert await backend.agents.get("a") is None


async def test_sessions_round_trip_and_filter(backend: StateBackend) -> None:
    first = SessionRecord(id="s1", agent="x", metadata={"k": "v"})
    await backend.sessions.put(first)
    await backend.sessions.put(SessionRecord(id="s2", agent="y"))
    assert await backend.sessions.get("s1") == first
    assert [s.id for s in await backend.sessions.list()] == ["s1", "s2"]
    assert [s.id for s in await backend.sessions.list(agent="y")] == ["s2"]
    assert await backend.sessions.delete("s1") is True
    assert await backend.sessions.get("s1") is None
    assert [s.id for s in await backend.sessions.list()] == ["s2"]


async def test_concurrent_session_updates_all_land(backend: StateBackend) -> None:
    """Read-modify-write under contention (Redis: WATCH/MULTI retried with jitter)."""
    await backend.sessions.put(SessionRecord(id="s", agent="x"))

    def bump(record: SessionRecord) -> None:
        record.turns += 1
        record.status = SessionStatus.RUNNING

    await asyncio.gather(*(backend.sessions.update("s", bump) for _ in range(25)))
    record = await backend.sessions.get("s")
    assert record is not None
    assert record.turns == 25
    assert await backend.sessions.update("missing", bump) is None


async def test_event_ids_increase_by_one_per_session(backend: StateBackend) -> None:
    a1 = await backend.events.append("a", "t1", "turn.started", {"n": 1})
    a2 = await backend.events.append("a", "t1", "model.delta", {"text": "hé"})
    b1 = await backend.events.append("b", "t9", "turn.started", {})
    assert (a1["id"], a2["id"], b1["id"]) == (1, 2, 1)
    assert a2["data"] == {"text": "hé"}
    assert a2["session_id"] == "a"
    assert a2["turn_id"] == "t1"
    assert a2["ts"] >= a1["ts"] > 0
    assert [e["id"] for e in await backend.events.read("a")] == [1, 2]
    assert [e["id"] for e in await backend.events.read("a", after=1)] == [2]
    assert await backend.events.last_id("a") == 2
    assert await backend.events.last_id("nobody") == 0
    await backend.events.delete("a")
    assert await backend.events.read("a") == []


async def test_a_retried_append_is_recorded_once(backend: StateBackend) -> None:
    first = await backend.events.append("s", "t", "model.delta", {"x": 1}, seq=1)
    again = await backend.events.append("s", "t", "model.delta", {"x": 1}, seq=1)
    second = await backend.events.append("s", "t", "model.delta", {"x": 2}, seq=2)
    assert again["id"] == first["id"] == 1
    assert second["id"] == 2
    assert len(await backend.events.read("s")) == 2


async def test_the_log_is_bounded(backend: StateBackend) -> None:
    for i in range(300):
        await backend.events.append("s", "t", "model.delta", {"i": i})
    kept = await backend.events.read("s")
    assert 50 <= len(kept) < 300  # bounded (Redis trims approximately: MAXLEN ~)
    assert kept[-1]["id"] == 300
    assert [e["id"] for e in kept] == list(range(kept[0]["id"], 301))


async def _collect(it: Any, n: int) -> list[TurnEvent]:
    out: list[TurnEvent] = []
    async for event in it:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_follow_replays_then_streams_live_without_gaps_or_duplicates(
    backend: StateBackend,
) -> None:
    for i in range(3):
        await backend.events.append("s", "t", "e", {"i": i})
    follower = asyncio.create_task(_collect(backend.events.follow("s", after=1), 6))
    await asyncio.sleep(0.05)
    for i in range(3, 7):
        await backend.events.append("s", "t", "e", {"i": i})
    events = await asyncio.wait_for(follower, 5)
    assert [e["id"] for e in events] == [2, 3, 4, 5, 6, 7]


async def test_many_followers_see_concurrent_appends_in_order(backend: StateBackend) -> None:
    followers = [asyncio.create_task(_collect(backend.events.follow("s"), 40)) for _ in range(5)]
    await asyncio.sleep(0.05)
    await asyncio.gather(*(backend.events.append("s", "t", "e", {"i": i}) for i in range(40)))
    for events in await asyncio.wait_for(asyncio.gather(*followers), 5):
        assert [e["id"] for e in events] == list(range(1, 41))


async def test_a_slow_follower_catches_up_from_the_log(backend: StateBackend) -> None:
    """More events than a follower buffers arrive while it does not read: it reads the
    rest from the log, in order, and its memory stays bounded."""
    it = backend.events.follow("s")
    first = asyncio.create_task(_collect(it, 1))
    await asyncio.sleep(0.05)
    for i in range(45):
        await backend.events.append("s", "t", "e", {"i": i})
    assert [e["id"] for e in await first] == [1]
    rest = await asyncio.wait_for(_collect(it, 44), 5)
    assert [e["id"] for e in rest] == list(range(2, 46))
    await it.aclose()


async def test_idempotent_accept_and_ordered_claims(backend: StateBackend) -> None:
    q = backend.turns
    one = await q.accept("s", "hello", idempotency_key="k1", message_id="msg_1")
    again = await q.accept("s", "hello", idempotency_key="k1", message_id="msg_other")
    two = await q.accept("s", "second", idempotency_key="k2", message_id="msg_2")
    assert not one.duplicate
    assert again.duplicate
    assert not two.duplicate
    assert again.message.message_id == "msg_1"
    assert one.message.turn_id == "turn_1"
    with pytest.raises(IdempotencyConflictError):
        await q.accept("s", "different", idempotency_key="k1", message_id="msg_3")
    assert await q.depth("s") == 2
    assert await q.pending() == ["s"]

    assert await q.try_lease("s", "A", 5) is True
    assert await q.try_lease("s", "B", 5) is False
    claim = await q.next("s", "A", 5, "c1")
    assert claim is not None
    assert claim.message.content == "hello"
    assert claim.attempt == 1
    assert (await q.next("s", "A", 5, "c1")) == claim  # a retried call changes nothing
    await q.finish("s", "A", "c1")
    claim2 = await q.next("s", "A", 5, "c2")
    assert claim2 is not None
    assert claim2.message.content == "second"
    await q.finish("s", "A", "c2")
    assert await q.next("s", "A", 5, "c3") is None  # empty: lease released with it
    assert await q.pending() == []
    assert await q.try_lease("s", "B", 5) is True
    with pytest.raises(LeaseLostError):
        await q.next("s", "A", 5, "c4")


async def test_an_expired_lease_hands_the_in_flight_turn_over(backend: StateBackend) -> None:
    q = backend.turns
    await q.accept("s", "work", idempotency_key="k", message_id="msg_w")
    assert await q.try_lease("s", "A", 0.2)
    claim = await q.next("s", "A", 0.2, "a1")
    assert claim is not None
    assert claim.attempt == 1
    # A stops renewing (it died); B cannot take the lease until it expires.
    assert not await q.try_lease("s", "B", 5)
    assert not await q.renew("s", "B", 5)
    await asyncio.sleep(0.3)
    assert await q.pending() == ["s"]
    assert await q.try_lease("s", "B", 5)
    recovered = await q.next("s", "B", 5, "b1")
    assert recovered is not None
    assert recovered.message.message_id == "msg_w"
    assert recovered.attempt == 2
    assert not await q.renew("s", "A", 5)
    await q.finish("s", "A", "a1")  # the old owner's finish is ignored
    assert await q.next("s", "B", 5, "b1") == recovered
    await q.finish("s", "B", "b1")
    assert await q.next("s", "B", 5, "b2") is None


async def test_release_keeps_work_for_another_replica(backend: StateBackend) -> None:
    q = backend.turns
    await q.accept("s", "work", idempotency_key="k", message_id="msg_w")
    assert await q.try_lease("s", "A", 5)
    assert await q.next("s", "A", 5, "a1") is not None
    await q.release("s", "A")
    assert await q.pending() == ["s"]
    assert await q.try_lease("s", "B", 5)
    claim = await q.next("s", "B", 5, "b1")
    assert claim is not None
    assert claim.attempt == 2


async def test_appends_are_fenced_by_the_lease(backend: StateBackend) -> None:
    assert await backend.turns.try_lease("s", "A", 5)
    await backend.events.append("s", "t", "e", {}, fence="A")
    with pytest.raises(LeaseLostError):
        await backend.events.append("s", "t", "e", {}, fence="B")
    assert await backend.events.last_id("s") == 1


async def test_token_bucket_is_shared_and_refills(backend: StateBackend) -> None:
    rl = backend.rate_limits
    decisions = [await rl.acquire("llm", rate=20, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 0 < decisions[-1].retry_after <= 0.06
    await asyncio.sleep(0.11)
    assert (await rl.acquire("llm", rate=20, burst=3)).allowed
    await rl.reset("llm")
    assert (await rl.acquire("llm", rate=20, burst=3)).remaining == 2


async def test_breaker_state_compare_and_set(backend: StateBackend) -> None:
    store = backend.breakers
    state = await store.get("llm:openai")
    assert state == BreakerState()
    opened = BreakerState(state="open", failures=5, opened_at=123.5)
    assert await store.compare_and_set("llm:openai", 0, opened)
    assert not await store.compare_and_set("llm:openai", 0, BreakerState(state="closed"))
    stored = await store.get("llm:openai")
    assert stored.state == "open"
    assert stored.version == 1
    assert stored.opened_at == 123.5


async def test_concurrent_breaker_updates_retry_on_conflict(backend: StateBackend) -> None:
    async def slow_bump(state: BreakerState) -> None:
        await asyncio.sleep(0.001)  # widen the race window
        state.failures += 1

    await asyncio.gather(*(backend.breakers.update("b", slow_bump) for _ in range(20)))
    assert (await backend.breakers.get("b")).failures == 20
    assert await backend.breakers.incr_failures("b") == 21
    await backend.breakers.delete("b")
    assert (await backend.breakers.get("b")).failures == 0


async def test_api_keys_round_trip_by_tenant(backend: StateBackend) -> None:
    from agentfleet_runtime.auth.apikeys import ApiKeyRecord, hash_key, new_key
    from agentfleet_runtime.auth.base import Scope

    key_id, key = new_key()
    record = ApiKeyRecord(id=key_id, tenant="a", name="k", scopes=[Scope.READ], hash=hash_key(key))
    await backend.api_keys.put(record)
    await backend.api_keys.put(record.model_copy(update={"id": "other", "tenant": "b"}))
    assert await backend.api_keys.get(key_id) == record
    assert [k.id for k in await backend.api_keys.list(tenant="a")] == [key_id]
    assert len(await backend.api_keys.list()) == 2
    assert await backend.api_keys.delete(key_id) is True
    assert await backend.api_keys.delete(key_id) is False
    assert await backend.api_keys.get(key_id) is None


async def test_tenants_round_trip(backend: StateBackend) -> None:
    from agentfleet_runtime.tenants import TenantQuotas, TenantRecord

    await backend.tenants.put(TenantRecord(id="b"))
    await backend.tenants.put(TenantRecord(id="a", quotas=TenantQuotas(max_sessions=3)))
    got = await backend.tenants.get("a")
    assert got is not None
    assert got.quotas.max_sessions == 3
    assert [t.id for t in await backend.tenants.list()] == ["a", "b"]
    assert await backend.tenants.delete("a") is True
    assert await backend.tenants.get("a") is None


async def test_sessions_filter_by_tenant(backend: StateBackend) -> None:
    await backend.sessions.put(SessionRecord(id="s1", agent="x", tenant="a"))
    await backend.sessions.put(SessionRecord(id="s2", agent="x", tenant="b"))
    assert [s.id for s in await backend.sessions.list(tenant="b")] == ["s2"]


async def test_a_changed_mcp_server_reaches_the_other_replicas(backend: StateBackend) -> None:
    from agentfleet_crds.contract import ResolvedMCPServer
    from agentfleet_crds.v1alpha1 import MCPTransport
    from agentfleet_runtime.state.mcp_registry import MCPServerSync
    from agentfleet_runtime.tools.catalog import MCPServerCatalog

    def server(url: str) -> ResolvedMCPServer:
        return ResolvedMCPServer(name="remote", transport=MCPTransport.STREAMABLE_HTTP, url=url)

    heard: list[set[str]] = []

    async def changed(names: set[str]) -> None:
        heard.append(names)

    async def nobody(_: dict[str, object]) -> None:
        return None

    here, there = MCPServerCatalog(), MCPServerCatalog()
    a = MCPServerSync(backend.mcp_servers, here, replica="a", broadcast=nobody)
    b = MCPServerSync(backend.mcp_servers, there, replica="b", broadcast=nobody, changed=changed)
    registered = await a.register(server("http://one/mcp"), tenant="t")
    await b.load()
    assert heard == [{"remote"}]
    assert there["remote"].url == "http://one/mcp"

    replaced = await a.replace(server("http://two/mcp"), tenant="t")
    assert replaced.created_at == registered.created_at
    assert here["remote"].url == "http://two/mcp"
    await b.load()
    assert heard[-1] == {"remote"}
    assert there["remote"].url == "http://two/mcp"
    await b.load()  # nothing changed since
    assert len(heard) == 2
