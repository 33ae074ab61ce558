"""``Idempotency-Key`` on the creating POSTs, over real HTTP, on memory and real Redis."""

from __future__ import annotations

import asyncio
import uuid

from agentfleet_runtime.errors import PROBLEM_BASE

from .conftest import ADMIN_A2, ADMIN_B, AGENT_SPEC, Api


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _session_count(api: Api) -> int:
    total: int = (await api.call("GET", "/sessions")).json()["total"]
    return total


async def test_a_retry_returns_the_first_response_and_creates_once(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    key = _key()
    first = await api.call("POST", "/sessions", json={"agent": "calc", "title": "t"}, headers=key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # Same content, other spacing and key order: still the same request.
    again = await api.call(
        "POST",
        "/sessions",
        content=b'{ "title": "t",  "agent": "calc" }',
        headers={**key, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await _session_count(api) == 1
    # Without a key every request creates.
    assert (await api.call("POST", "/sessions", json={"agent": "calc"})).status_code == 201
    assert await _session_count(api) == 2


async def test_same_key_other_body_is_refused(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    key = _key()
    assert (await api.call("POST", "/sessions", json={"agent": "calc"}, headers=key)).is_success
    reused = await api.call(
        "POST", "/sessions", json={"agent": "calc", "title": "other"}, headers=key
    )
    assert reused.status_code == 409
    assert reused.json()["type"] == PROBLEM_BASE + "idempotency-key-reused"
    assert await _session_count(api) == 1


async def test_concurrent_duplicates_create_once(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    key = _key()
    responses = await asyncio.gather(
        *(api.call("POST", "/sessions", json={"agent": "calc"}, headers=key) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["type"] == PROBLEM_BASE + "idempotency-key-in-progress"
        assert refused.headers["Retry-After"] == "1"
    assert await _session_count(api) == 1


async def test_a_failed_request_releases_its_key(api: Api) -> None:
    key = _key()
    missing = await api.call("POST", "/sessions", json={"agent": "calc"}, headers=key)
    assert missing.status_code == 404  # no such agent yet: nothing stored
    await api.create_agent()
    retried = await api.call("POST", "/sessions", json={"agent": "calc"}, headers=key)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


async def test_keys_are_scoped_to_the_caller_and_the_route(api: Api) -> None:
    await api.create_agent()
    await api.create_agent("b-agent", token=ADMIN_B)
    key = _key()
    mine = await api.call("POST", "/sessions", json={"agent": "calc"}, headers=key)
    colleague = await api.call("POST", "/sessions", ADMIN_A2, json={"agent": "calc"}, headers=key)
    other_tenant = await api.call(
        "POST", "/sessions", ADMIN_B, json={"agent": "b-agent"}, headers=key
    )
    assert mine.status_code == colleague.status_code == other_tenant.status_code == 201
    assert len({mine.json()["id"], colleague.json()["id"], other_tenant.json()["id"]}) == 3
    assert "Idempotent-Replayed" not in colleague.headers
    # Another route with the same key is another request.
    agent = await api.call("POST", "/agents", json={"name": "x", "spec": AGENT_SPEC}, headers=key)
    assert agent.status_code == 201


async def test_api_key_creation_replays_the_secret_to_its_caller_only(any_api: Api) -> None:
    api = any_api
    key = _key()
    body = {"name": "ci", "scopes": ["read"]}
    first = await api.call("POST", "/api-keys", json=body, headers=key)
    assert first.status_code == 201
    again = await api.call("POST", "/api-keys", json=body, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["key"] == first.json()["key"]
    # The stored response is encrypted: the secret is nowhere in the state backend.
    store = api.app.state.state_backend.idempotency
    dumped = repr(getattr(store, "_entries", {}))
    if api.app.state.state_backend.name == "redis":
        client = store._r
        values = [await client.get(k) async for k in client.scan_iter(match="*:idem:*")]
        dumped = repr(values)
    assert first.json()["key"] not in dumped
    # The secret part (``af_<id>_<secret>``; the secret may itself contain "_").
    assert first.json()["key"].split("_", 2)[2] not in dumped
    # Another admin of the same tenant with the same key gets a key of its own.
    colleague = await api.call("POST", "/api-keys", ADMIN_A2, json=body, headers=key)
    assert colleague.status_code == 201
    assert colleague.json()["key"] != first.json()["key"]
    assert "Idempotent-Replayed" not in colleague.headers
    keys = (await api.call("GET", "/api-keys")).json()
    assert keys["total"] == 2


async def test_agents_tenants_and_bulk_are_idempotent(api: Api) -> None:
    key = _key()
    body = {"name": "once", "spec": AGENT_SPEC}
    assert (await api.call("POST", "/agents", json=body, headers=key)).status_code == 201
    replay = await api.call("POST", "/agents", json=body, headers=key)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"

    key = _key()
    assert (await api.call("POST", "/tenants", json={"id": "acme"}, headers=key)).status_code == 201
    replay = await api.call("POST", "/tenants", json={"id": "acme"}, headers=key)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"

    key = _key()
    bulk = {"items": [{"agent": "once"}, {"agent": "once"}]}
    first = await api.call("POST", "/sessions/bulk", json=bulk, headers=key)
    again = await api.call("POST", "/sessions/bulk", json=bulk, headers=key)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _session_count(api) == 2


async def test_dead_letter_replay_runs_once_per_key(api: Api) -> None:
    await api.create_agent()
    session = (await api.create_session())["id"]
    api.fake.script.push_error(401, message="bad key")
    failed = await api.call("POST", f"/sessions/{session}/messages", json={"content": "hi"})
    assert failed.status_code == 502
    letter = (await api.call("GET", "/deadletters")).json()["items"][0]["id"]
    key = _key()
    first = await api.call("POST", f"/deadletters/{letter}/replay", headers=key)
    assert first.status_code == 202, first.text
    again = await api.call("POST", f"/deadletters/{letter}/replay", headers=key)
    assert again.status_code == 202  # not 409 "already replayed": the first answer again
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["replay_turn_id"] == first.json()["replay_turn_id"]
    plain = await api.call("POST", f"/deadletters/{letter}/replay")
    assert plain.status_code == 409
