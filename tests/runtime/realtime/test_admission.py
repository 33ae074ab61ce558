"""Admission control over a real server: a replica at ``max_connections`` refuses new
WebSockets with 1013 and a retry hint and new SSE streams with 503, keeps serving the
connections it has, reports not ready — and is ready again once below 90 % (hysteresis).
Waiting turns saturate too; the SDK waits the hint before reconnecting."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from agentfleet import AgentfleetClient
from agentfleet.protocol import CloseCode, retry_after_hint
from agentfleet_runtime.realtime.admission import Admission
from agentfleet_runtime.realtime.hub import ConnectionHub
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.scheduling import FairScheduler
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import RedisServer

from .conftest import RT, TOKEN, recv, recv_until, running_rt, settings_for

LIMIT = 10


@pytest.fixture
async def small(
    shared_redis: RedisServer, fake_provider: RunningFakeProvider, demo_mcp_url: str
) -> AsyncIterator[RT]:
    settings = settings_for(
        "memory", shared_redis, fake_provider, max_connections=LIMIT, retry_after_seconds=2
    )
    async with running_rt(settings, fake_provider, demo_mcp_url) as served:
        yield served


def rejected(metrics: str) -> float:
    found = re.search(
        r'^agentfleet_realtime_admission_rejected_total\{reason="saturated"\} (\S+)$', metrics, re.M
    )
    return float(found.group(1)) if found else 0.0


async def test_a_saturated_replica_refuses_new_streams_and_keeps_the_old_ones(small: RT) -> None:
    session = await small.session()
    before = rejected((await small.client.get("/metrics")).text)
    stack = [await small.connect().__aenter__() for _ in range(LIMIT)]
    for ws in stack:
        assert (await recv(ws))["type"] == "welcome"
    watcher = stack[0]
    await watcher.send(f'{{"type":"subscribe","session_id":"{session}","after":0}}')
    assert (await recv(watcher))["type"] == "subscribed"

    # the next connection: accepted, then closed 1013 with a retry hint
    async with small.connect() as over:
        with pytest.raises(ConnectionClosed) as closed:
            await recv(over)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.TRY_AGAIN_LATER
    assert closed.value.rcvd.reason.startswith(f"saturated: {LIMIT} of {LIMIT} WebSocket")
    assert retry_after_hint(closed.value.rcvd.reason) == 2

    # readiness says so (the load balancer routes elsewhere); SSE refused with 503
    ready = await small.client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "saturated"
    sse = await small.client.get(f"/api/v1/sessions/{session}/events/stream")
    assert sse.status_code == 503
    assert sse.json()["type"].endswith("/saturated")
    assert sse.headers["Retry-After"] == "2"
    metrics = (await small.client.get("/metrics")).text
    assert rejected(metrics) - before == 2
    assert re.search(r"^agentfleet_realtime_saturated 1\.0$", metrics, re.M)

    # the connections already open are untouched: the watcher gets the turn's events
    sent = await small.client.post(
        f"/api/v1/sessions/{session}/messages", json={"content": "calculate 6*7"}
    )
    assert sent.status_code == 200, sent.text
    turn = sent.json()["turn_id"]
    frames = await recv_until(
        watcher,
        lambda f: (
            f["type"] == "event"
            and f["event"]["turn_id"] == turn
            and f["event"]["type"] == "turn.completed"
        ),
    )
    assert frames[-1]["event"]["data"]["answer"]

    # hysteresis: at 90 % still saturated; below it ready again and admitting
    await stack.pop().close()
    await _until(lambda: len(small.app.state.connections) == LIMIT - 1)
    assert (await small.client.get("/healthz/ready")).status_code == 503
    await stack.pop().close()
    await _until(lambda: len(small.app.state.connections) == LIMIT - 2)
    assert (await small.client.get("/healthz/ready")).status_code == 200
    async with small.connect() as again:
        assert (await recv(again))["type"] == "welcome"
    for ws in stack:
        await ws.close()


async def test_turns_waiting_for_a_slot_saturate_the_replica() -> None:
    settings = RealtimeSettings(saturation_waiting_turns=2)
    scheduler = FairScheduler(1)
    admission = Admission(settings, ConnectionHub(settings), scheduler=scheduler)
    release = asyncio.Event()

    async def turn() -> None:
        async with scheduler.slot("t"):
            await release.wait()

    tasks = [asyncio.create_task(turn()) for _ in range(3)]
    await _until(lambda: scheduler.waiting() == 2)
    assert admission.saturation() == "2 turns waiting for an execution slot"
    refusal = admission.check()
    assert refusal is not None
    assert refusal.code == CloseCode.TRY_AGAIN_LATER
    release.set()
    await asyncio.gather(*tasks)
    assert admission.saturation() is None
    assert admission.check() is None


async def test_the_sdk_waits_the_retry_hint_of_a_saturated_replica(
    shared_redis: RedisServer, fake_provider: RunningFakeProvider, demo_mcp_url: str
) -> None:
    settings = settings_for(
        "memory", shared_redis, fake_provider, max_connections=1, retry_after_seconds=1
    )
    async with running_rt(settings, fake_provider, demo_mcp_url) as rt:
        holder = await rt.connect().__aenter__()
        assert (await recv(holder))["type"] == "welcome"
        async with AgentfleetClient(rt.url, token=TOKEN) as client:
            realtime: Any = client.realtime(backoff_base=0.01, backoff_max=0.05)
            async with realtime:
                started = time.monotonic()
                await asyncio.sleep(0.3)  # refused at once, then waits the 1 s hint
                assert not realtime.connected.is_set()
                await holder.close()
                await asyncio.wait_for(realtime.connected.wait(), 10)
                assert time.monotonic() - started >= 0.9
                assert realtime.connections == 1


async def _until(condition: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (polling the server's state)
            await asyncio.sleep(0.01)
