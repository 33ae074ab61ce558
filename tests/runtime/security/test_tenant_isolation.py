"""Tenant isolation: the fair scheduler's ordering (unit), and over real HTTP a tenant
flooding its quotas gets 429s with the right problem types and ``Retry-After`` while the
other tenant's turn still runs — admitted ahead of the flood's queued turns."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from agentfleet_runtime.config import TenancySettings
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.scheduling import FairScheduler, SchedulingSettings
from agentfleet_runtime.tenants import TenantQuotas

# -- the scheduler --------------------------------------------------------------------------


async def _run_all(scheduler: FairScheduler, tenants: list[str]) -> list[str]:
    """Start a turn for each of ``tenants`` (in that order) while every slot is held,
    then free the slots: the order in which they were admitted."""
    order: list[str] = []
    gate = asyncio.Event()

    async def turn(tenant: str, label: str) -> None:
        async with scheduler.slot(tenant):
            order.append(label)
            await gate.wait()

    assert scheduler.capacity is not None
    blockers = [asyncio.create_task(turn("x", "blocker")) for _ in range(scheduler.capacity)]
    await asyncio.sleep(0)
    tasks = []
    for i, tenant in enumerate(tenants):
        tasks.append(asyncio.create_task(turn(tenant, f"{tenant}{i}")))
        await asyncio.sleep(0)
    assert scheduler.waiting() == len(tenants)
    gate.set()
    await asyncio.gather(*blockers, *tasks)
    return [label for label in order if label != "blocker"]


async def test_waiting_turns_are_admitted_round_robin_across_tenants() -> None:
    """A queued 6 turns before B and C queued theirs: B and C are not served after all
    of A's (FIFO) but in turn with them; within a tenant, in arrival order."""
    scheduler = FairScheduler(1)
    order = await _run_all(scheduler, ["a", "a", "a", "a", "a", "a", "b", "c", "b"])
    assert order == ["a0", "b6", "c7", "a1", "b8", "a2", "a3", "a4", "a5"]
    assert scheduler.running == 0
    assert scheduler.waiting() == 0


async def test_capacity_is_never_exceeded_and_unlimited_never_waits() -> None:
    scheduler = FairScheduler(3)
    running = peak = 0

    async def turn(tenant: str) -> None:
        nonlocal running, peak
        async with scheduler.slot(tenant):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1

    await asyncio.gather(*(turn(f"t{i % 4}") for i in range(40)))
    assert peak == 3
    unlimited = FairScheduler(None)
    async with unlimited.slot("a"), unlimited.slot("a"), unlimited.slot("b"):
        assert unlimited.running == 3
        assert unlimited.waiting() == 0
    assert (
        FairScheduler(SchedulingSettings(max_concurrent_turns=0).max_concurrent_turns).capacity
        is None
    )


async def test_a_cancelled_waiter_gives_up_its_place_and_never_leaks_a_slot() -> None:
    scheduler = FairScheduler(1)
    holder_entered, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with scheduler.slot("a"):
            holder_entered.set()
            await release.wait()

    async def wait_turn(tenant: str) -> str:
        async with scheduler.slot(tenant):
            return tenant

    holder = asyncio.create_task(hold())
    await holder_entered.wait()
    cancelled = asyncio.create_task(wait_turn("b"))
    later = asyncio.create_task(wait_turn("c"))
    await asyncio.sleep(0)
    assert scheduler.waiting() == 2
    cancelled.cancel()
    await asyncio.sleep(0)
    assert scheduler.waiting("b") == 0
    assert scheduler.waiting() == 1
    release.set()
    assert await later == "c"
    await holder
    # granted and cancelled in the same step: the slot goes on to the next waiter
    async with scheduler.slot("a"):
        granted = asyncio.create_task(wait_turn("b"))
        following = asyncio.create_task(wait_turn("c"))
        await asyncio.sleep(0)
    granted.cancel()  # its slot was granted on release, before it ran
    assert await following == "c"
    assert scheduler.running == 0
    assert scheduler.waiting() == 0


# -- over HTTP ------------------------------------------------------------------------------


def _problem(response: httpx2.Response) -> tuple[str, str]:
    body = response.json()
    return body["type"].rsplit("/", 1)[-1], body.get("quota") or body.get("limit_scope", "")


async def test_a_flooding_tenant_is_throttled_and_the_other_is_served_fairly(
    make_secure: Any, agent_body: Any
) -> None:
    """Tenant a (``default``) floods: its turns beyond ``max_concurrent_turns`` get 429
    ``quota-exceeded`` (``Retry-After: 1``), its requests beyond ``requests_per_minute``
    429 ``rate-limit-exceeded`` (``Retry-After``). The replica executes 2 turns at once;
    a's 6 accepted turns fill both slots and queue 4 more. Tenant b's turn, sent after
    them, is the next one admitted (round-robin), not the last (FIFO), and completes."""
    async with make_secure(
        scheduling=SchedulingSettings(max_concurrent_turns=2),
        tenancy=TenancySettings(default_quotas=TenantQuotas(max_concurrent_turns=6)),
    ) as rt:
        assert rt.fake is not None
        rt.fake.script.fallback = FakeReply(text="done", latency_seconds=0.4)
        a, b = rt.as_(rt.admin_a), rt.as_(rt.admin_b)
        scheduler: FairScheduler = rt.app.state.service.scheduler
        for headers in (a, b):
            created = await rt.client.post("/api/v1/agents", json=agent_body, headers=headers)
            assert created.status_code == 201, created.text
        sessions_a = []
        for _ in range(8):
            response = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
            sessions_a.append(response.json()["id"])
        session_b = (
            await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=b)
        ).json()["id"]
        # a's own request quota, small enough for the flood below to run into it
        patched = await rt.client.post(
            "/api/v1/tenants",
            json={"id": "default", "quotas": {"requests_per_minute": 30}},
            headers=a,
        )
        assert patched.status_code == 201, patched.text

        def send(session: str, content: str, headers: dict[str, str]) -> Any:
            return rt.client.post(
                f"/api/v1/sessions/{session}/messages", json={"content": content}, headers=headers
            )

        accepted = [asyncio.create_task(send(sessions_a[i], f"flood a{i}", a)) for i in range(6)]
        async with asyncio.timeout(10):
            while scheduler.waiting("default") < 4:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert scheduler.running == 2

        # the flood: more turns than a's quota, then more requests than its rate
        flood = await asyncio.gather(
            *(send(sessions_a[6 + i % 2], f"over a{i}", a) for i in range(40))
        )
        refusals = {_problem(r) for r in flood if r.status_code == 429}
        assert all(r.status_code == 429 for r in flood), [r.text for r in flood][:3]
        assert refusals == {
            ("quota-exceeded", "max_concurrent_turns"),
            ("rate-limit-exceeded", "tenant"),
        }
        quota = next(r for r in flood if _problem(r)[0] == "quota-exceeded")
        assert quota.headers["Retry-After"] == "1"
        assert quota.json()["limit"] == 6
        limited = next(r for r in flood if _problem(r)[0] == "rate-limit-exceeded")
        assert int(limited.headers["Retry-After"]) >= 1

        # b, while a floods and its 4 turns wait: admitted next, and answered
        answer = await send(session_b, "b's turn", b)
        assert answer.status_code == 200, answer.text
        assert answer.json()["answer"]["content"] == "done"
        assert not all(task.done() for task in accepted)  # a still has turns to run
        results = await asyncio.gather(*accepted)
        assert [r.status_code for r in results] == [200] * 6

        asked = [
            m["content"]
            for request in rt.fake.script.requests
            for m in request.messages
            if m.get("role") == "user"
            and isinstance(m.get("content"), str)
            and m["content"].startswith(("flood", "b's"))
        ]
        # a's first two were running; the ring then serves a (waiting longest) and b:
        # b's turn runs third or fourth, not seventh, behind all of a's (FIFO)
        assert len(asked) == 7
        assert asked.index("b's turn") in (2, 3), asked
        assert scheduler.running == 0
        assert scheduler.waiting() == 0


@pytest.mark.parametrize("limit", [2])
async def test_max_websockets_quota_closes_the_tenants_next_connection(
    make_secure: Any, limit: int
) -> None:
    """Per replica: the tenant's next WebSocket is closed 1008 naming the quota, with a
    retry hint; the other tenant connects; a freed connection lets the tenant in again."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from agentfleet.protocol import CloseCode, retry_after_hint

    async with make_secure(
        tenancy=TenancySettings(default_quotas=TenantQuotas(max_websockets=limit))
    ) as rt:
        url = rt.url.replace("http", "ws", 1) + "/api/v1/ws"

        def open_ws(token: str) -> Any:
            return connect(url, additional_headers=rt.as_(token), ping_interval=None)

        first = [await open_ws(rt.admin_a) for _ in range(limit)]
        for ws in first:
            assert '"welcome"' in await ws.recv()
        over = await open_ws(rt.admin_a)
        with pytest.raises(ConnectionClosed) as closed:
            await over.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.POLICY_VIOLATION
        assert "max_websockets (2)" in closed.value.rcvd.reason
        assert retry_after_hint(closed.value.rcvd.reason) == 5
        other = await open_ws(rt.admin_b)  # another tenant's count is its own
        assert '"welcome"' in await other.recv()
        await first[0].close()
        async with asyncio.timeout(5):
            while rt.app.state.connections.count("default") >= limit:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        again = await open_ws(rt.admin_a)
        assert '"welcome"' in await again.recv()
        for ws in (*first[1:], other, again):
            await ws.close()
