"""Bulk create/delete of sessions and agents, and the import of messages into a
session, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from agentfleet_runtime.config import TenancySettings
from agentfleet_runtime.errors import PROBLEM_BASE
from agentfleet_runtime.providers.fake.script import FakeReply
from agentfleet_runtime.tenants import TenantQuotas

from .conftest import ADMIN_B, AGENT_SPEC, Api, running_api, state_settings


def _statuses(body: dict[str, Any]) -> list[int]:
    assert [r["index"] for r in body["results"]] == list(range(len(body["results"])))
    return [r["status"] for r in body["results"]]


async def test_bulk_create_sessions_reports_each_item(api: Api) -> None:
    await api.create_agent()
    await api.create_agent("b-agent", token=ADMIN_B)
    items = [
        {"agent": "calc", "title": "a"},
        {"agent": "nope"},
        {"agent": "b-agent"},
        {"agent": "calc"},
    ]
    response = await api.call("POST", "/sessions/bulk", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert _statuses(body) == [201, 404, 404, 201]  # another tenant's agent is "not found"
    assert body["succeeded"] == 2
    assert body["failed"] == 2
    assert body["results"][1]["problem"]["type"] == PROBLEM_BASE + "not-found"
    assert body["results"][1]["problem"]["instance"] == "/api/v1/sessions/bulk"
    created = [r["id"] for r in body["results"] if r["status"] == 201]
    listed = (await api.call("GET", "/sessions")).json()["items"]
    assert [s["id"] for s in listed] == created
    assert listed[0]["title"] == "a"


async def test_bulk_create_respects_the_session_quota(
    fake_provider: Any, demo_mcp_url: str
) -> None:
    async with running_api(
        fake_provider,
        demo_mcp_url,
        state_settings("memory", None),
        tenancy=TenancySettings(default_quotas=TenantQuotas(max_sessions=2)),
    ) as api:
        await api.create_agent()
        await api.create_session()
        body = (
            await api.call("POST", "/sessions/bulk", json={"items": [{"agent": "calc"}] * 3})
        ).json()
        assert _statuses(body) == [201, 429, 429]
        assert body["results"][1]["problem"]["type"] == PROBLEM_BASE + "quota-exceeded"
        assert body["results"][1]["problem"]["limit"] == 2


async def test_bulk_sizes_are_bounded(api: Api) -> None:
    too_many = await api.call("POST", "/sessions/bulk", json={"items": [{"agent": "x"}] * 101})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "body.items"
    empty = await api.call("POST", "/sessions/bulk-delete", json={"ids": []})
    assert empty.status_code == 422
    malformed = await api.call("POST", "/agents/bulk", json={"items": [{"name": "UPPER"}]})
    assert malformed.status_code == 422  # validated as a whole: nothing created
    assert (await api.call("GET", "/agents", params={"source": "api"})).json()["total"] == 0


async def test_bulk_delete_sessions_within_the_tenant(api: Api) -> None:
    await api.create_agent()
    await api.create_agent("b-agent", token=ADMIN_B)
    mine = [(await api.create_session())["id"] for _ in range(2)]
    theirs = (await api.create_session("b-agent", token=ADMIN_B))["id"]
    body = (
        await api.call(
            "POST", "/sessions/bulk-delete", json={"ids": [mine[0], theirs, "ses_missing", mine[1]]}
        )
    ).json()
    assert _statuses(body) == [204, 404, 404, 204]
    assert (await api.call("GET", "/sessions")).json()["total"] == 0
    assert (await api.call("GET", f"/sessions/{theirs}", ADMIN_B)).status_code == 200


async def test_bulk_create_and_delete_agents(api: Api) -> None:
    items = [
        {"name": "a1", "spec": AGENT_SPEC},
        {"name": "a1", "spec": AGENT_SPEC},  # a duplicate of the first
        {"name": "a2", "spec": {**AGENT_SPEC, "tools": [{"mcpServerRef": {"name": "ghost"}}]}},
        {"name": "a3", "spec": AGENT_SPEC},
    ]
    body = (await api.call("POST", "/agents/bulk", json={"items": items})).json()
    assert _statuses(body) == [201, 409, 422, 201]
    assert [r["id"] for r in body["results"]] == ["a1", None, None, "a3"]
    assert body["results"][2]["problem"]["type"] == PROBLEM_BASE + "invalid-request"
    # Agents are an admin matter: an invoker may not bulk-create them.
    key = (
        await api.call("POST", "/api-keys", json={"name": "i", "scopes": ["agent-invoke"]})
    ).json()["key"]
    refused = await api.call("POST", "/agents/bulk", key, json={"items": items[:1]})
    assert refused.status_code == 403

    deleted = (
        await api.call("POST", "/agents/bulk-delete", json={"names": ["a1", "ghost", "a3"]})
    ).json()
    assert _statuses(deleted) == [204, 404, 204]
    assert (await api.call("GET", "/agents", params={"source": "api"})).json()["total"] == 0


async def test_import_messages_then_a_turn_sees_them(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    session = (await api.create_session())["id"]
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
    ]
    response = await api.call(
        "POST", f"/sessions/{session}/messages/import", json={"messages": history}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 2, "total": 2}
    assert (await api.call("GET", f"/sessions/{session}/messages")).json()["items"] == history

    api.fake.script.push_text("You are Ada.")
    turn = await api.call("POST", f"/sessions/{session}/messages", json={"content": "Who am I?"})
    assert turn.status_code == 200, turn.text
    sent = api.fake.script.last_request.messages
    contents = [m.get("content") for m in sent if m.get("role") in ("user", "assistant")]
    assert contents == ["My name is Ada.", "Nice to meet you, Ada.", "Who am I?"]
    messages = (await api.call("GET", f"/sessions/{session}/messages")).json()["items"]
    assert [m["content"] for m in messages] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "Who am I?",
        "You are Ada.",
    ]
    # Still a session of its tenant only; roles are limited to user/assistant.
    other = await api.call(
        "POST", f"/sessions/{session}/messages/import", ADMIN_B, json={"messages": history}
    )
    assert other.status_code == 404
    tool = await api.call(
        "POST",
        f"/sessions/{session}/messages/import",
        json={"messages": [{"role": "tool", "content": "x"}]},
    )
    assert tool.status_code == 422


async def test_import_is_refused_while_a_turn_runs(api: Api) -> None:
    await api.create_agent()
    session = (await api.create_session())["id"]
    api.fake.script.push(FakeReply(text="slow", latency_seconds=1.5))
    turn = asyncio.create_task(
        api.call("POST", f"/sessions/{session}/messages", json={"content": "go"})
    )
    for _ in range(100):
        status = (await api.call("GET", f"/sessions/{session}")).json()["status"]
        if status == "running":
            break
        await asyncio.sleep(0.02)
    busy = await api.call(
        "POST",
        f"/sessions/{session}/messages/import",
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert busy.status_code == 409
    assert busy.json()["type"] == PROBLEM_BASE + "session-busy"
    assert (await turn).status_code == 200
    after = await api.call(
        "POST",
        f"/sessions/{session}/messages/import",
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert after.status_code == 200
    assert after.json()["total"] == 3
