"""A session keeps one checkpoint, however long it runs: each checkpoint holds its own copy
of the conversation, so the AgentService prunes the older ones after every turn (memory
and Redis backends, over real HTTP)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import INSTALL_HINT, redis_server_path, running_redis

from .conftest import Api, MakeApi


async def checkpoints(api: Api, session: str) -> int:
    saver = api.app.state.state_backend.checkpointer
    for _ in range(100):  # pruning runs in the background after the turn
        found = [c async for c in saver.alist({"configurable": {"thread_id": session}})]
        if len(found) == 1:
            break
        await asyncio.sleep(0.02)
    return len(found)


async def converse(api: Api) -> str:
    assert (await api.create_agent()).status_code == 201
    session = await api.session()
    for turn in range(4):
        answer = await api.say(session, f"calculate {turn}+1")
        assert answer.status_code == 200, answer.text
    return session


async def test_a_long_session_keeps_one_checkpoint_and_its_whole_conversation(api: Api) -> None:
    session = await converse(api)
    assert await checkpoints(api, session) == 1
    messages = (await api.get(f"/api/v1/sessions/{session}/messages")).json()
    assert [m["content"] for m in messages["items"] if m["role"] == "user"] == [
        f"calculate {turn}+1" for turn in range(4)
    ]


async def test_the_redis_backend_prunes_too(make_api: MakeApi) -> None:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as redis:
        async with make_api(state=StateSettings(backend="redis", redis_url=redis.url)) as api:
            session = await converse(api)
            assert await checkpoints(api, session) == 1
            client = aioredis.from_url(redis.url)
            [key] = [k async for k in client.scan_iter(match=f"*cp:{{{session}}}*blobs")]
            channels = [field.split(b"\x00")[0] for field in await client.hkeys(key)]
            await client.aclose()
            assert b"messages" in channels
            assert len(channels) == len(set(channels))  # one stored value per channel
