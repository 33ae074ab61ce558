"""The WebSocket API on both state backends: auth and close codes, several sessions per
connection, acknowledged and idempotent messages, resume without gaps or duplicates,
offline queueing, heartbeat, backpressure, SSE resume, graceful drain."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from websockets.exceptions import ConnectionClosed

from agentfleet.protocol import CloseCode
from agentfleet_runtime.auth.settings import StaticToken
from agentfleet_runtime.auth.static import StaticTokenAuthenticator
from agentfleet_runtime.providers.fake.script import FakeReply

from .conftest import RT, TOKEN, recv, recv_until


def completed(turn_id: str) -> Any:
    return lambda f: (
        f["type"] == "event"
        and f["event"]["turn_id"] == turn_id
        and f["event"]["type"] in ("turn.completed", "turn.failed")
    )


async def closed_with(ws: Any) -> int:
    async def drain() -> None:
        for _ in range(50):
            await recv(ws, 5)  # answers heartbeats: alive until the close

    with pytest.raises(ConnectionClosed) as info:
        await drain()
    assert info.value.rcvd is not None
    return int(info.value.rcvd.code)


async def test_auth_by_header_or_first_frame_and_clear_close_codes(rt: RT) -> None:
    async with rt.connect() as ws:
        welcome = await recv(ws)
        assert welcome["type"] == "welcome"
        assert welcome["subject"] == "tester"
    async with rt.connect(token=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": TOKEN}))
        assert (await recv(ws))["type"] == "welcome"
    async with rt.connect(token="wrong") as ws:
        assert await closed_with(ws) == CloseCode.UNAUTHORIZED
    async with rt.connect(token=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "session_id": "x"}))
        assert await closed_with(ws) == CloseCode.UNAUTHORIZED
    async with rt.connect(token=None) as ws:  # says nothing: auth timeout
        assert await closed_with(ws) == CloseCode.TIMEOUT
    rest = await httpx2.AsyncClient(base_url=rt.url).get("/api/v1/sessions")
    assert rest.status_code == 401
    assert rest.json()["type"].endswith("/unauthorized")


async def test_a_token_that_expires_closes_the_connection_with_4402(rt: RT) -> None:
    # Long enough for the welcome to arrive first on a loaded machine.
    soon = datetime.now(UTC) + timedelta(seconds=2)
    rt.app.state.authenticator = StaticTokenAuthenticator(
        [StaticToken(token="short", expires_at=soon)]  # type: ignore[arg-type]
    )
    async with rt.connect(token="short") as ws:
        assert (await recv(ws))["type"] == "welcome"
        assert await closed_with(ws) == CloseCode.TOKEN_EXPIRED
    async with rt.connect(token="short") as ws:  # now expired at connect
        assert await closed_with(ws) == CloseCode.TOKEN_EXPIRED


async def test_several_sessions_on_one_connection_with_acks(rt: RT) -> None:
    a, b = await rt.session(), await rt.session()
    async with rt.connect() as ws:
        await recv(ws)
        for sid in (a, b):
            await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
            sub = await recv(ws)
            assert sub == {"type": "subscribed", "session_id": sid, "after": 0, "last_event_id": 0}
        rt.fake.script.push_text("answer for a")
        await ws.send(json.dumps({"type": "message", "session_id": a, "content": "hi a"}))
        ack = (await recv_until(ws, lambda f: f["type"] == "ack"))[-1]
        assert ack["session_id"] == a
        assert ack["message_id"].startswith("msg_")
        assert ack["turn_id"].startswith("turn_")
        assert ack["duplicate"] is False
        frames = await recv_until(ws, completed(ack["turn_id"]))
        events = [f["event"] for f in frames if f["type"] == "event"]
        assert {e["session_id"] for e in events} == {a}
        assert events[-1]["data"]["answer"]["content"] == "answer for a"
        assert [e["id"] for e in events] == list(range(1, len(events) + 1))
        await ws.send(json.dumps({"type": "subscribe", "session_id": "ses_nope"}))
        error = (await recv_until(ws, lambda f: f["type"] == "error"))[-1]
        assert error["code"] == "not-found"
        assert error["session_id"] == "ses_nope"


async def test_a_resent_message_is_acknowledged_again_and_runs_once(rt: RT) -> None:
    sid = await rt.session()
    rt.fake.script.fallback = FakeReply(text="done")
    before = len(rt.fake.script.requests)
    async with rt.connect() as ws:
        await recv(ws)
        message = {
            "type": "message",
            "session_id": sid,
            "content": "once",
            "idempotency_key": "k-1",
        }
        await ws.send(json.dumps(message))
        first = (await recv_until(ws, lambda f: f["type"] == "ack"))[-1]
    async with rt.connect() as ws:  # the ack was "lost": the client resends
        await recv(ws)
        await ws.send(json.dumps(message))
        again = (await recv_until(ws, lambda f: f["type"] == "ack"))[-1]
        assert again["duplicate"] is True
        assert again["turn_id"] == first["turn_id"]
        await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
        await recv_until(ws, completed(first["turn_id"]))
    await asyncio.sleep(0.2)
    assert len(rt.fake.script.requests) - before == 1  # the model was asked once
    session = (await rt.client.get(f"/api/v1/sessions/{sid}")).json()
    assert session["turns"] == 1


async def test_resume_after_disconnect_and_offline_queue(rt: RT) -> None:
    """Messages sent while a client is away are queued and run in order; the client
    resumes from its last event id and gets everything it missed, once."""
    sid = await rt.session()
    rt.fake.script.push(
        FakeReply(text="one two three four", chunk_delay_seconds=0.02),
        FakeReply(text="second answer"),
    )
    async with rt.connect() as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
        await recv(ws)
        await ws.send(json.dumps({"type": "message", "session_id": sid, "content": "first"}))
        await ws.send(json.dumps({"type": "message", "session_id": sid, "content": "second"}))
        acks: list[dict[str, Any]] = []
        seen: list[dict[str, Any]] = []
        while len(acks) < 2 or not any(e["type"] == "model.delta" for e in seen):
            frame = await recv(ws)
            if frame["type"] == "ack":
                acks.append(frame)
            elif frame["type"] == "event":
                seen.append(frame["event"])
        assert acks[0]["turn_id"] != acks[1]["turn_id"]
    last = seen[-1]["id"]
    await asyncio.sleep(1.0)  # both turns finish while the client is away
    async with rt.connect() as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "session_id": sid, "after": last}))
        await recv(ws)
        rest: list[dict[str, Any]] = []
        while sum(e["type"] == "turn.completed" for e in rest) < 2:
            frames = await recv_until(ws, lambda f: f["type"] == "event")
            rest.extend(f["event"] for f in frames if f["type"] == "event")
    ids = [e["id"] for e in seen] + [e["id"] for e in rest]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate
    answers = [e["data"]["answer"]["content"] for e in rest if e["type"] == "turn.completed"]
    assert answers == ["one two three four", "second answer"]
    started = [e["data"]["content"] for e in [*seen, *rest] if e["type"] == "turn.started"]
    assert started == ["first", "second"]


async def test_the_per_session_endpoint_keeps_its_protocol(rt: RT) -> None:
    sid = await rt.session()
    async with rt.connect(path=f"/api/v1/sessions/{sid}/ws") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        await ws.send("not json")
        error = await recv(ws)
        assert error["fatal"] is True
        assert await closed_with(ws) == CloseCode.BAD_FRAME
    async with rt.connect(path="/api/v1/sessions/ses_missing/ws") as ws:
        assert await closed_with(ws) == 4404


async def test_a_silent_client_is_closed_by_the_heartbeat(rt: RT) -> None:
    async with rt.connect() as ws:
        await recv(ws)
        started = time.monotonic()
        pings = 0

        async def ignore_pings() -> None:
            nonlocal pings
            while True:
                frame = await recv(ws, 5, pings=True)
                pings += frame["type"] == "ping"  # never answered

        with pytest.raises(ConnectionClosed) as info:
            await ignore_pings()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == CloseCode.TIMEOUT
        assert pings >= 1
        assert time.monotonic() - started < 3
    async with rt.connect() as ws:  # a client that answers stays connected
        await recv(ws)
        await asyncio.sleep(0)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            frame = await recv(ws, 2, pings=True)
            if frame["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))


async def test_a_slow_reader_gets_every_event_with_bounded_buffers(rt: RT) -> None:
    sid = await rt.session()
    words = " ".join(f"w{i}" for i in range(600))
    rt.fake.script.push(FakeReply(text=words))
    async with rt.connect() as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
        await recv(ws)
        await ws.send(json.dumps({"type": "message", "session_id": sid, "content": "go"}))
        for _ in range(8):  # alive (it sends pongs) but reads nothing while ~600 events come
            await ws.send(json.dumps({"type": "pong"}))
            await asyncio.sleep(0.2)
        connections = list(rt.app.state.connections._connections)
        assert connections
        limit = rt.app.state.settings.realtime.send_queue_frames
        assert all(c._events.qsize() <= limit for c in connections)
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "turn.completed":
            frame = await recv(ws)
            if frame["type"] == "event":
                events.append(frame["event"])
            elif frame["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    text = "".join(e["data"]["text"] for e in events if e["type"] == "model.delta")
    assert text == words


async def test_sse_follows_and_resumes_with_last_event_id(rt: RT) -> None:
    sid = await rt.session()
    rt.fake.script.push_text("alpha beta")
    await rt.client.post(f"/api/v1/sessions/{sid}/messages", json={"content": "x"})
    all_events = (await rt.client.get(f"/api/v1/sessions/{sid}/events")).json()["items"]
    assert len(all_events) >= 3

    async def read_sse(headers: dict[str, str], n: int) -> list[int]:
        ids: list[int] = []
        async with rt.client.stream(
            "GET", f"/api/v1/sessions/{sid}/events/stream", headers=headers
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                    if len(ids) == n:
                        return ids
        return ids

    everything = await asyncio.wait_for(read_sse({}, len(all_events)), 5)
    assert everything == [e["id"] for e in all_events]
    resumed = await asyncio.wait_for(read_sse({"Last-Event-ID": "2"}, len(all_events) - 2), 5)
    assert resumed == everything[2:]


async def test_drain_turns_readiness_false_and_closes_with_1012(rt: RT) -> None:
    async with rt.connect() as ws:
        await recv(ws)
        drained = rt.app.state.drainer.drain()
        assert await closed_with(ws) == CloseCode.SERVICE_RESTART
        await drained
    ready = await rt.client.get("/healthz/ready")
    assert ready.status_code == 503
    async with rt.connect() as ws:  # new connections are told to go elsewhere
        assert await closed_with(ws) == CloseCode.SERVICE_RESTART
