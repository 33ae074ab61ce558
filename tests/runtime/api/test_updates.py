"""``PATCH /sessions/{id}`` (a JSON merge patch of title and metadata) and
``PUT /agents/{name}`` (replace an API-created agent's spec), over real HTTP on the memory
backend and on a real redis-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, ModelProviderName, ModelSpec
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider

from .conftest import ADMIN_B, AGENT_SPEC, Api, running_api, state_settings


@pytest.fixture
async def config_api(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> AsyncIterator[Api]:
    """Memory backend with a shared agent ``helper`` from the runtime config."""
    spec = AgentSpec(
        system_prompt="Shared helper.",
        model=ModelSpec(provider=ModelProviderName.FAKE, name="fake-model"),
    )
    config = RuntimeConfig(agents=[AgentConfig(name="helper", spec=spec)])
    state = state_settings("memory", None)
    async with running_api(fake_provider, demo_mcp_url, state, runtime_config=config) as rt:
        for _ in range(100):  # config agents load at start-up
            if (await rt.call("GET", "/agents/helper")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        yield rt


async def test_patch_session_merges_title_and_metadata(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    created = await api.create_session(title="Old", metadata={"a": "1", "b": "2"})
    path = f"/sessions/{created['id']}"

    changed = await api.call("PATCH", path, json={"metadata": {"b": None, "c": "3"}})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["title"] == "Old"  # absent: unchanged
    assert body["metadata"] == {"a": "1", "c": "3"}
    assert body["updated_at"] > created["updated_at"]

    renamed = await api.call("PATCH", path, json={"title": "New"})
    assert renamed.json()["title"] == "New"
    assert renamed.json()["metadata"] == {"a": "1", "c": "3"}
    got = (await api.call("GET", path)).json()
    assert (got["title"], got["metadata"]) == ("New", {"a": "1", "c": "3"})

    cleared = await api.call("PATCH", path, json={"title": None, "metadata": None})
    assert (cleared.json()["title"], cleared.json()["metadata"]) == (None, {})
    assert (await api.call("PATCH", path, json={})).json()["id"] == created["id"]


async def test_concurrent_patches_of_different_keys_both_land(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    sid = (await api.create_session())["id"]
    responses = await asyncio.gather(
        *(
            api.call("PATCH", f"/sessions/{sid}", json={"metadata": {f"k{i}": str(i)}})
            for i in range(8)
        )
    )
    assert all(r.status_code == 200 for r in responses)
    got = (await api.call("GET", f"/sessions/{sid}")).json()
    assert got["metadata"] == {f"k{i}": str(i) for i in range(8)}


async def test_patch_session_validation(api: Api) -> None:
    await api.create_agent()
    sid = (await api.create_session(metadata={f"k{i}": "v" for i in range(60)}))["id"]
    path = f"/sessions/{sid}"

    too_long = await api.call("PATCH", path, json={"title": "x" * 257})
    assert too_long.status_code == 422
    assert "title" in too_long.text
    unknown = await api.call("PATCH", path, json={"agent": "other"})
    assert unknown.status_code == 422
    assert "agent" in unknown.text
    wrong_type = await api.call("PATCH", path, json={"metadata": {"a": 1}})
    assert wrong_type.status_code == 422
    assert "metadata" in wrong_type.text

    # 60 keys + 5 new ones > 64: refused, and nothing changed.
    over = await api.call("PATCH", path, json={"metadata": {f"n{i}": "v" for i in range(5)}})
    assert over.status_code == 422, over.text
    assert "64" in over.json()["detail"]
    assert len((await api.call("GET", path)).json()["metadata"]) == 60
    # Removing as many as are added keeps it within the limit.
    swap = {**{f"n{i}": "v" for i in range(5)}, **{f"k{i}": None for i in range(5)}}
    assert (await api.call("PATCH", path, json={"metadata": swap})).status_code == 200


async def test_patch_other_tenants_session_is_not_found(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    sid = (await api.create_session(title="Mine"))["id"]
    refused = await api.call("PATCH", f"/sessions/{sid}", ADMIN_B, json={"title": "Theirs"})
    assert refused.status_code == 404
    assert refused.json()["type"].endswith("/not-found")
    assert (await api.call("GET", f"/sessions/{sid}")).json()["title"] == "Mine"
    missing = await api.call("PATCH", "/sessions/ses_missing", json={"title": "x"})
    assert missing.status_code == 404


async def test_put_agent_replaces_spec_and_next_turn_uses_it(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    before = (await api.call("GET", "/agents/calc")).json()
    sid = (await api.create_session())["id"]
    new_spec = {**AGENT_SPEC, "systemPrompt": "You are a pirate calculator."}

    replaced = await api.call("PUT", "/agents/calc", json={"spec": new_spec})
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["spec"]["systemPrompt"] == "You are a pirate calculator."
    assert body["source"] == "api"
    assert body["created_at"] == before["created_at"]
    assert body["tools"]  # the new spec's tools are connected
    assert body["tools"] == before["tools"]
    got = (await api.call("GET", "/agents/calc")).json()
    assert got["spec"]["systemPrompt"] == "You are a pirate calculator."

    turn = await api.call("POST", f"/sessions/{sid}/messages", json={"content": "hi"})
    assert turn.status_code == 200, turn.text
    sent = json.dumps(api.fake.script.last_request.messages)
    assert "You are a pirate calculator." in sent
    assert "You are a calculator." not in sent

    for _ in range(50):  # audit events are written in the background
        events = await api.call("GET", "/audit", params={"action": "agent.updated"})
        assert events.status_code == 200, events.text
        if any(e.get("subject") == "calc" for e in events.json()["items"]):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no agent.updated audit event")


async def test_put_agent_with_unresolvable_spec_keeps_old_agent(api: Api) -> None:
    await api.create_agent()
    bad = {**AGENT_SPEC, "systemPrompt": "Broken.", "tools": [{"mcpServerRef": {"name": "nope"}}]}
    refused = await api.call("PUT", "/agents/calc", json={"spec": bad})
    assert refused.status_code == 422, refused.text
    assert "nope" in refused.json()["detail"]
    got = (await api.call("GET", "/agents/calc")).json()
    assert got["spec"]["systemPrompt"] == "You are a calculator."

    sid = (await api.create_session())["id"]
    turn = await api.call("POST", f"/sessions/{sid}/messages", json={"content": "hi"})
    assert turn.status_code == 200, turn.text
    assert "You are a calculator." in json.dumps(api.fake.script.last_request.messages)

    invalid = await api.call("PUT", "/agents/calc", json={"spec": {"systemPrompt": "x"}})
    assert invalid.status_code == 422
    assert "model" in invalid.text
    extra = await api.call("PUT", "/agents/calc", json={"name": "calc", "spec": AGENT_SPEC})
    assert extra.status_code == 422
    assert "name" in extra.text


async def test_put_other_tenants_agent_is_not_found(api: Api) -> None:
    await api.create_agent()
    changed = {**AGENT_SPEC, "systemPrompt": "Hijacked."}
    refused = await api.call("PUT", "/agents/calc", ADMIN_B, json={"spec": changed})
    assert refused.status_code == 404
    assert "Hijacked" not in refused.text
    got = (await api.call("GET", "/agents/calc")).json()
    assert got["spec"]["systemPrompt"] == "You are a calculator."
    missing = await api.call("PUT", "/agents/nobody", json={"spec": AGENT_SPEC})
    assert missing.status_code == 404


async def test_put_config_agent_is_read_only(config_api: Api) -> None:
    api = config_api
    for token in (None, ADMIN_B):
        kwargs = {} if token is None else {"token": token}
        refused = await api.call("PUT", "/agents/helper", json={"spec": AGENT_SPEC}, **kwargs)
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("/read-only")
    got = (await api.call("GET", "/agents/helper")).json()
    assert got["spec"]["systemPrompt"] == "Shared helper."
