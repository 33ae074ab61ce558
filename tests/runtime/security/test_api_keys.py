"""API key lifecycle, scopes and JWT over real HTTP (and the WebSocket)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentfleet_runtime.auth.settings import AuthSettings
from agentfleet_runtime.config import RuntimeSettings


async def test_key_lifecycle_create_use_rotate_revoke(secure: Any) -> None:
    rt = secure
    unauth = await rt.client.get("/api/v1/sessions")
    assert unauth.status_code == 401
    assert unauth.headers["content-type"].startswith("application/problem+json")

    created = await rt.create_key(rt.admin_a, "read")
    key = created["key"]
    assert key.startswith("af_")
    assert created["scopes"] == ["read"]
    assert created["active"]
    # Shown once: neither the list nor the get returns the key or its hash.
    listed = (await rt.client.get("/api/v1/api-keys", headers=rt.as_(rt.admin_a))).json()
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert key not in json.dumps(listed)
    assert "hash" not in json.dumps(listed)
    # The stored record holds only the SHA-256.
    record = await rt.app.state.state_backend.api_keys.get(created["id"])
    assert key not in record.model_dump_json()

    assert (await rt.client.get("/api/v1/sessions", headers=rt.as_(key))).status_code == 200
    # The X-API-Key header works as well.
    assert (await rt.client.get("/api/v1/agents", headers={"X-API-Key": key})).status_code == 200

    rotated = await rt.client.post(
        f"/api/v1/api-keys/{created['id']}/rotate", headers=rt.as_(rt.admin_a)
    )
    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert new_key != key
    assert (await rt.client.get("/api/v1/sessions", headers=rt.as_(key))).status_code == 401
    assert (await rt.client.get("/api/v1/sessions", headers=rt.as_(new_key))).status_code == 200

    revoked = await rt.client.post(
        f"/api/v1/api-keys/{created['id']}/revoke", headers=rt.as_(rt.admin_a)
    )
    assert revoked.json()["active"] is False
    refused = await rt.client.get("/api/v1/sessions", headers=rt.as_(new_key))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]

    forged = "af_" + created["id"] + "_" + "A" * 43
    assert (await rt.client.get("/api/v1/sessions", headers=rt.as_(forged))).status_code == 401


async def test_scopes_are_enforced_on_every_route_class(secure: Any, agent_body: Any) -> None:
    rt = secure
    read = (await rt.create_key(rt.admin_a, "read"))["key"]
    invoke = (await rt.create_key(rt.admin_a, "agent-invoke"))["key"]
    admin = (await rt.create_key(rt.admin_a, "admin"))["key"]

    # Agents: create needs admin.
    assert (
        await rt.client.post("/api/v1/agents", json=agent_body, headers=rt.as_(invoke))
    ).status_code == 403
    created = await rt.client.post("/api/v1/agents", json=agent_body, headers=rt.as_(admin))
    assert created.status_code == 201, created.text
    # Sessions: read can list, not create; invoke can create and send.
    denied = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=rt.as_(read))
    assert denied.status_code == 403
    assert denied.json()["type"].endswith("/forbidden")
    assert denied.json()["required_scope"] == "agent-invoke"
    session = await rt.client.post(
        "/api/v1/sessions", json={"agent": "calc"}, headers=rt.as_(invoke)
    )
    assert session.status_code == 201
    sid = session.json()["id"]
    assert (await rt.client.get(f"/api/v1/sessions/{sid}", headers=rt.as_(read))).status_code == 200
    assert (
        await rt.client.delete(f"/api/v1/sessions/{sid}", headers=rt.as_(read))
    ).status_code == 403
    # Key management and dead-letter actions need admin.
    assert (await rt.client.get("/api/v1/api-keys", headers=rt.as_(invoke))).status_code == 403
    assert (await rt.client.get("/api/v1/api-keys", headers=rt.as_(admin))).status_code == 200


async def test_an_expired_key_is_refused_as_expired(secure: Any) -> None:
    rt = secure
    past = await rt.client.post(
        "/api/v1/api-keys",
        json={"name": "old", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"},
        headers=rt.as_(rt.admin_a),
    )
    assert past.status_code == 422
    soon = datetime.now(UTC) + timedelta(seconds=1)
    created = await rt.create_key(rt.admin_a, "read", expires_at=soon.isoformat())
    record = await rt.app.state.state_backend.api_keys.get(created["id"])
    record.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await rt.app.state.state_backend.api_keys.put(record)
    refused = await rt.client.get("/api/v1/sessions", headers=rt.as_(created["key"]))
    assert refused.status_code == 401
    assert refused.json()["type"].endswith("/token-expired")


async def test_websocket_uses_the_same_keys(secure: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    rt = secure
    key = (await rt.create_key(rt.admin_a, "read"))["key"]
    ws_url = rt.url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome"
        assert welcome["subject"].startswith("api-key:")
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(ws_url, additional_headers={"Authorization": "Bearer af_bad"}) as ws:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_production_refuses_auth_none_unless_allowed() -> None:
    with pytest.raises(ValueError, match="AGENTFLEET_AUTH__MODE=none"):
        RuntimeSettings(environment="production")  # type: ignore[arg-type]
    allowed = RuntimeSettings(
        environment="production",  # type: ignore[arg-type]
        auth={"mode": "none", "allow_none_in_production": True},  # type: ignore[arg-type]
    )
    assert allowed.auth.mode == "none"
    assert RuntimeSettings().auth.mode == "none"  # development default: `agentfleet dev`


async def test_a_bootstrap_token_file_creates_the_first_key(
    make_secure: Any, tmp_path: Path
) -> None:
    """What a production install does: api-keys mode, one admin token from a mounted
    Secret file (no JSON list to pass through the chart), used to create real keys."""
    token_file = tmp_path / "bootstrap-token"
    token_file.write_text("bootstrap-secret-0123456789\n")
    auth = AuthSettings(mode="api-keys", bootstrap_token_file=token_file)
    async with make_secure(auth=auth) as rt:
        assert (await rt.client.get("/api/v1/sessions")).status_code == 401
        created = await rt.create_key("bootstrap-secret-0123456789", "agent-invoke")
        headers = rt.as_(created["key"])
        assert (await rt.client.get("/api/v1/sessions", headers=headers)).status_code == 200


def test_a_missing_or_short_bootstrap_token_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = AuthSettings(mode="api-keys", bootstrap_token_file=tmp_path / "nope")
    with pytest.raises(ValueError, match="BOOTSTRAP_TOKEN_FILE: cannot read"):
        missing.all_tokens()
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(ValueError, match="at least 16 characters"):
        AuthSettings(mode="api-keys", bootstrap_token_file=short).all_tokens()
