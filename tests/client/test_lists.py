"""The SDK's list methods over paged lists, its bulk calls and idempotency keys, against
a real runtime over HTTP."""

from __future__ import annotations

import uuid

import pytest

from agentfleet import AgentfleetClient, APIError, Page, Session
from agentfleet.client import PAGE_SIZE

from .conftest import TOKEN, Served

SPEC = {"systemPrompt": "Be brief.", "model": {"provider": "fake", "name": "fake-model"}}


async def test_list_methods_read_every_page(served: Served) -> None:
    async with AgentfleetClient(served.url, token=TOKEN) as client:
        await client.create_agent("helper", SPEC)
        created = await client.create_sessions(
            [{"agent": "helper", "metadata": {"n": str(i % 2)}} for i in range(7)]
        )
        assert created.succeeded == 7
        ids = [r.id for r in created.results]

        assert [s.id for s in await client.list_sessions()] == ids
        few = [s.id async for s in client.iter_sessions(page_size=2)]
        assert few == ids
        odd = await client.list_sessions(metadata={"n": "1"}, sort="-created_at")
        assert [s.id for s in odd] == ids[1::2][::-1]

        page = await client.page("/sessions", Session, limit=3, agent="helper")
        assert isinstance(page, Page)
        assert page.total == 7
        assert [s.id for s in page.items] == ids[:3]
        assert isinstance(page.items[0], Session)
        rest = await client.page(
            "/sessions", Session, limit=10, cursor=page.next_cursor, agent="helper"
        )
        assert [s.id for s in rest.items] == ids[3:]
        assert rest.next_cursor is None
        assert [a.name for a in await client.list_agents(source="api")] == ["helper"]
        assert PAGE_SIZE <= 500  # the server's maximum page size

        with pytest.raises(APIError) as refused:
            await client.page("/sessions", Session, sort="colour")
        assert refused.value.status == 422

        deleted = await client.delete_sessions([ids[0], "ses_missing"])
        assert [r.status for r in deleted.results] == [204, 404]
        assert not deleted.results[1].ok


async def test_idempotent_create_and_message_import(served: Served) -> None:
    async with AgentfleetClient(served.url, token=TOKEN) as client:
        key = str(uuid.uuid4())
        first = await client.create_agent("helper", SPEC, idempotency_key=key)
        again = await client.create_agent("helper", SPEC, idempotency_key=key)  # no 409
        assert again == first

        key = str(uuid.uuid4())
        session = await client.create_session("helper", idempotency_key=key)
        assert (await client.create_session("helper", idempotency_key=key)).id == session.id
        assert len(await client.list_sessions()) == 1

        total = await client.import_messages(
            session.id,
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
        assert total == 2
        assert [m["content"] for m in await client.messages(session.id)] == ["hi", "hello"]
