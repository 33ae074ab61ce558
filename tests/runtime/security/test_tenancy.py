"""Tenant isolation as a matrix: every endpoint called by another tenant's admin → 404 or
403, never the data; lists and searches show nothing of the other tenant's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect

from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, ModelProviderName, ModelSpec


async def test_wrong_tenant_matrix(secure: Any, agent_body: Any) -> None:
    rt = secure
    a, b = rt.as_(rt.admin_a), rt.as_(rt.admin_b)
    assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=a)).status_code == 201
    sid = (await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)).json()["id"]
    answer = await rt.client.post(
        f"/api/v1/sessions/{sid}/messages", json={"content": "calculate 2+3"}, headers=a
    )
    assert answer.status_code == 200, answer.text
    key = await rt.create_key(rt.admin_a, "read")
    letter = await rt.app.state.dead_letters.record(
        agent="calc", session_id=sid, turn_id="t1", content="hi", tenant="default"
    )
    # What must never show (ids the caller sends are echoed in 404 details, which is fine).
    secret_markers = ["calculate 2+3", "You are a calculator", key["key"]]

    matrix: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/v1/agents/calc", None),
        ("DELETE", "/api/v1/agents/calc", None),
        ("PUT", "/api/v1/agents/calc", {"spec": agent_body["spec"]}),
        ("POST", "/api/v1/sessions", {"agent": "calc"}),
        ("GET", f"/api/v1/sessions/{sid}", None),
        ("PATCH", f"/api/v1/sessions/{sid}", {"title": "x"}),
        ("GET", f"/api/v1/sessions/{sid}/messages", None),
        ("POST", f"/api/v1/sessions/{sid}/messages", {"content": "hi"}),
        ("POST", f"/api/v1/sessions/{sid}/messages/stream", {"content": "hi"}),
        ("GET", f"/api/v1/sessions/{sid}/events", None),
        ("GET", f"/api/v1/sessions/{sid}/events/stream", None),
        ("DELETE", f"/api/v1/sessions/{sid}", None),
        ("GET", f"/api/v1/api-keys/{key['id']}", None),
        ("POST", f"/api/v1/api-keys/{key['id']}/rotate", None),
        ("POST", f"/api/v1/api-keys/{key['id']}/revoke", None),
        ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
        ("GET", "/api/v1/tenants/default", None),
        ("PATCH", "/api/v1/tenants/default", {"display_name": "x"}),
        ("DELETE", "/api/v1/tenants/default", None),
        ("POST", "/api/v1/tenants", {"id": "sneaky"}),
    ]
    if letter is not None:
        matrix += [
            ("GET", f"/api/v1/deadletters/{letter.id}", None),
            ("POST", f"/api/v1/deadletters/{letter.id}/replay", None),
            ("POST", f"/api/v1/deadletters/{letter.id}/discard", None),
            ("DELETE", f"/api/v1/deadletters/{letter.id}", None),
        ]
    for method, path, body in matrix:
        response = await rt.client.request(method, path, json=body, headers=b)
        assert response.status_code in (403, 404), (method, path, response.status_code)
        assert not any(m in response.text for m in secret_markers), (method, path)

    # Lists: nothing of tenant a's.
    for path in ("/api/v1/sessions", "/api/v1/api-keys", "/api/v1/deadletters", "/api/v1/agents"):
        listed = await rt.client.get(path, headers=b)
        assert listed.status_code == 200, path
        assert listed.json()["items"] == [], (path, listed.text)
    # Tenant a still has everything.
    assert (await rt.client.get(f"/api/v1/sessions/{sid}", headers=a)).status_code == 200
    assert (await rt.client.get("/api/v1/agents/calc", headers=a)).status_code == 200

    # Agent names are per tenant: b creating "calc" gets its own (no 409 telling it that
    # a has one), and a's is unchanged.
    own = {**agent_body, "spec": {**agent_body["spec"], "systemPrompt": "B's own bot."}}
    created = await rt.client.post("/api/v1/agents", json=own, headers=b)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["systemPrompt"] == "B's own bot."
    assert not any(m in created.text for m in secret_markers)
    a_calc = (await rt.client.get("/api/v1/agents/calc", headers=a)).json()
    assert a_calc["spec"]["systemPrompt"] == "You are a calculator."
    if letter is not None:
        got = await rt.client.get(f"/api/v1/deadletters/{letter.id}", headers=a)
        assert got.status_code == 200

    # WebSocket: subscribing to or writing into another tenant's session fails.
    ws_url = rt.url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {rt.admin_b}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "subscribe", "session_id": sid}))
        frame = json.loads(await ws.recv())
        assert frame["type"] == "error"
        assert frame["code"] == "not-found"
        await ws.send(
            json.dumps(
                {"type": "message", "session_id": sid, "content": "x", "idempotency_key": "k1"}
            )
        )
        frame = json.loads(await ws.recv())
        assert frame["type"] == "error"
        assert frame["code"] == "not-found"


async def test_config_agents_are_shared_api_agents_are_not(secure: Any, agent_body: Any) -> None:
    rt = secure
    b = rt.as_(rt.admin_b)
    assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=b)).status_code == 201
    a_agents = await rt.client.get("/api/v1/agents", headers=rt.as_(rt.admin_a))
    assert a_agents.json()["items"] == []
    refused = await rt.client.post(
        "/api/v1/sessions", json={"agent": "calc"}, headers=rt.as_(rt.admin_a)
    )
    assert refused.status_code == 404


async def test_agent_names_are_per_tenant(make_secure: Any, agent_body: Any) -> None:
    """Two tenants each have a ``support-bot``; sessions run their own tenant's; deleting
    one leaves the other. A shared agent (from the runtime config) owns its name for
    every tenant: creating one of that name is a 409, for every tenant alike."""
    shared_spec = AgentSpec(
        system_prompt="Shared helper.",
        model=ModelSpec(provider=ModelProviderName.FAKE, name="fake-model"),
    )
    config = RuntimeConfig(agents=[AgentConfig(name="helper", spec=shared_spec)])
    async with make_secure(runtime_config=config) as rt:
        a, b = rt.as_(rt.admin_a), rt.as_(rt.admin_b)
        for headers, prompt in ((a, "Bot of tenant a."), (b, "Bot of tenant b.")):
            body = {"name": "support-bot", "spec": {**agent_body["spec"], "systemPrompt": prompt}}
            created = await rt.client.post("/api/v1/agents", json=body, headers=headers)
            assert created.status_code == 201, created.text
        again = await rt.client.post(
            "/api/v1/agents", json={**agent_body, "name": "support-bot"}, headers=a
        )
        assert again.status_code == 409  # its own tenant's name is taken

        for headers, prompt in ((a, "Bot of tenant a."), (b, "Bot of tenant b.")):
            got = (await rt.client.get("/api/v1/agents/support-bot", headers=headers)).json()
            assert got["spec"]["systemPrompt"] == prompt
            listed = (await rt.client.get("/api/v1/agents", headers=headers)).json()["items"]
            assert [
                x["spec"].get("systemPrompt") for x in listed if x["name"] == "support-bot"
            ] == [prompt]
            sid = (
                await rt.client.post(
                    "/api/v1/sessions", json={"agent": "support-bot"}, headers=headers
                )
            ).json()["id"]
            turn = await rt.client.post(
                f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=headers
            )
            assert turn.status_code == 200, turn.text
            assert rt.fake is not None
            assert prompt in json.dumps(rt.fake.script.last_request.messages)

        assert (await rt.client.delete("/api/v1/agents/support-bot", headers=a)).status_code == 204
        assert (await rt.client.get("/api/v1/agents/support-bot", headers=a)).status_code == 404
        kept = await rt.client.get("/api/v1/agents/support-bot", headers=b)
        assert kept.json()["spec"]["systemPrompt"] == "Bot of tenant b."

        # The shared config agent: visible to both, its name taken for both, read-only.
        for _ in range(100):
            if (await rt.client.get("/api/v1/agents/helper", headers=a)).status_code == 200:
                break
            await asyncio.sleep(0.05)
        for headers in (a, b):
            shared = await rt.client.get("/api/v1/agents/helper", headers=headers)
            assert shared.json()["source"] == "config"
            clash = await rt.client.post(
                "/api/v1/agents", json={**agent_body, "name": "helper"}, headers=headers
            )
            assert clash.status_code == 409
            assert "shared" in clash.json()["detail"]
            refused = await rt.client.delete("/api/v1/agents/helper", headers=headers)
            assert refused.status_code == 409
            assert refused.json()["type"].endswith("/read-only")
            replaced = await rt.client.put(
                "/api/v1/agents/helper", json={"spec": agent_body["spec"]}, headers=headers
            )
            assert replaced.status_code == 409
            assert replaced.json()["type"].endswith("/read-only")
