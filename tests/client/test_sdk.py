"""The client SDK against a real runtime over real sockets, with faults injected by a TCP
proxy: dropped connections, expired tokens, lost acks, partitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet import AgentfleetClient, APIError, AuthenticationError, RealtimeClient
from agentfleet.realtime import SessionState
from agentfleet_runtime.auth.settings import StaticToken
from agentfleet_runtime.auth.static import StaticTokenAuthenticator
from agentfleet_runtime.providers.fake.script import FakeReply

from .conftest import TOKEN, Served

SPEC = {"systemPrompt": "Be brief.", "model": {"provider": "fake", "name": "fake-model"}}


async def setup(served: Served, *, via_proxy: bool = True) -> tuple[AgentfleetClient, str]:
    client = AgentfleetClient(served.proxy.url if via_proxy else served.url, token=TOKEN)
    await client.create_agent("helper", SPEC)
    session = await client.create_session("helper")
    return client, session.id


async def until_turn_done(state: SessionState, turn_id: str, within: float = 10) -> None:
    async with asyncio.timeout(within):
        while state.turns.get(turn_id) is None or state.turns[turn_id].status == "running":  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def contiguous(state: SessionState) -> bool:
    ids = [e.id for e in state.events]
    return ids == list(range(1, len(ids) + 1))


async def test_rest_client_is_typed_and_raises_problems(served: Served) -> None:
    client, sid = await setup(served, via_proxy=False)
    async with client:
        served.fake.script.push_text("hello there")
        turn = await client.send_message(sid, "hi", idempotency_key="rest-1")
        assert turn.answer["content"] == "hello there"
        again = await client.send_message(sid, "hi", idempotency_key="rest-1")
        assert again.turn_id == turn.turn_id  # a retried POST does not run the turn again
        assert (await client.get_session(sid)).turns == 1
        assert [m["role"] for m in await client.messages(sid)] == ["user", "assistant"]
        events = await client.events(sid)
        assert events[-1].type == "turn.completed"
        assert [a.name for a in await client.list_agents()] == ["helper"]
        with pytest.raises(APIError) as info:
            await client.get_session("ses_missing")
        assert info.value.status == 404
        assert info.value.type.endswith("/not-found")
    async with AgentfleetClient(served.url, token="wrong") as bad:
        with pytest.raises(AuthenticationError):
            await bad.list_sessions()


async def test_sse_follow_from_the_sdk(served: Served) -> None:
    client, sid = await setup(served, via_proxy=False)
    async with client:
        served.fake.script.push_text("sse works")
        await client.send_message(sid, "go")
        seen = []
        async with asyncio.timeout(5):
            async for event in client.follow_events(sid, after=1):
                seen.append(event)
                if event.type == "turn.completed":
                    break
        assert seen[0].id == 2
        assert seen[-1].data["answer"]["content"] == "sse works"


async def test_dropped_connection_reconnects_with_backoff_and_resumes(served: Served) -> None:
    client, sid = await setup(served)
    served.fake.script.push(FakeReply(text=" ".join(["word"] * 40), chunk_delay_seconds=0.02))
    async with client, client.realtime(backoff_base=0.05) as rt:
        await rt.wait_connected()
        state = await rt.subscribe(sid)
        ack = await rt.send(sid, "stream please")
        async with asyncio.timeout(5):
            while state.last_event_id < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        served.proxy.cut()  # mid-stream
        await until_turn_done(state, ack.turn_id)
        assert rt.connections >= 2
        assert contiguous(state)
        assert state.turns[ack.turn_id].text == " ".join(["word"] * 40)


async def test_expired_token_is_refreshed_and_the_connection_reopened(served: Served) -> None:
    # Long enough for the first connection to open on a loaded machine; the test then
    # waits for the expiry instead of sleeping a fixed time.
    soon = datetime.now(UTC) + timedelta(seconds=2)
    served.app.state.authenticator = StaticTokenAuthenticator(
        [
            StaticToken(token="short", expires_at=soon),  # type: ignore[arg-type]
            StaticToken(token="fresh"),  # type: ignore[arg-type]
        ]
    )
    issued: list[str] = []

    async def provider() -> str:
        issued.append("short" if not issued else "fresh")
        return issued[-1]

    client = AgentfleetClient(served.proxy.url, token_provider=provider)
    async with client:
        await client.create_agent("helper", SPEC)
        sid = (await client.create_session("helper")).id
        async with client.realtime(backoff_base=0.05) as rt:
            await rt.wait_connected()
            state = await rt.subscribe(sid)
            assert rt.connections == 1
            async with asyncio.timeout(15):  # the first token expires: closed with 4402
                while rt.connections < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            served.fake.script.push_text("still here")
            ack = await rt.send(sid, "after expiry")
            await until_turn_done(state, ack.turn_id)
            assert rt.connections == 2
    assert issued == ["short", "fresh"]


async def test_an_unacknowledged_message_is_resent_and_runs_once(served: Served) -> None:
    client, sid = await setup(served)
    served.fake.script.fallback = FakeReply(text="ran")
    async with client, client.realtime(backoff_base=0.05) as rt:
        await rt.wait_connected()
        state = await rt.subscribe(sid)
        served.proxy.blackhole("down")  # the server's replies (the ack) are lost
        sending = asyncio.create_task(rt.send(sid, "exactly once", idempotency_key="k-once"))
        async with asyncio.timeout(5):
            while rt.connected.is_set():  # silence: the client gives the connection up  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not sending.done()  # no ack seen
        served.proxy.restore()
        ack = await asyncio.wait_for(sending, 10)  # resent after the reconnect
        assert ack.duplicate is True
        await until_turn_done(state, ack.turn_id)
    runs = [r for r in served.fake.script.requests if r.messages[-1]["content"] == "exactly once"]
    assert len(runs) == 1
    assert contiguous(state)


async def test_partition_keeps_local_state_and_syncs_on_reconnect(served: Served) -> None:
    client, sid = await setup(served)
    served.fake.script.push_text("before the partition")
    async with client, client.realtime(backoff_base=0.05, backoff_max=0.3) as rt:
        await rt.wait_connected()
        state = await rt.subscribe(sid)
        first = await rt.send(sid, "one")
        await until_turn_done(state, first.turn_id)
        seen_before = state.last_event_id

        served.proxy.blackhole()  # the server is unreachable for a while
        async with asyncio.timeout(5):
            while rt.connected.is_set():  # heartbeat silence: the client notices  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        queued = asyncio.create_task(rt.send(sid, "two"))  # sent while offline
        served.fake.script.push_text("after the partition")
        async with AgentfleetClient(served.url, token=TOKEN) as other:  # meanwhile...
            await other.send_message(sid, "from another client")
        await asyncio.sleep(0.5)
        assert state.last_event_id == seen_before  # kept, not lost, while offline
        assert state.turns[first.turn_id].answer == "before the partition"
        assert rt.pending() == 1

        served.proxy.restore()
        second = await asyncio.wait_for(queued, 10)
        await until_turn_done(state, second.turn_id)
        assert contiguous(state)
        answers = [t.answer for t in state.turns.values() if t.status == "completed"]
        assert len(answers) == 3  # including the turn that ran while we were away
        assert isinstance(rt, RealtimeClient)
