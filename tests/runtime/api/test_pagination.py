"""Cursor pagination, sorting and filtering of the list endpoints, over real HTTP."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest

from agentfleet_runtime.api.pagination import InvalidCursorError, decode_cursor, encode_cursor
from agentfleet_runtime.errors import PROBLEM_BASE

from .conftest import ADMIN_B, Api


async def _all_pages(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow ``next_cursor`` to the end; returns the items and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.call("GET", path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            assert "Link" not in response.headers
            assert body["links"]["next"] is None
            return items, pages
        assert response.headers["Link"] == f'<{body["links"]["next"]}>; rel="next"'


async def test_sessions_page_through_with_cursor_total_and_links(any_api: Api) -> None:
    api = any_api
    await api.create_agent()
    created = [(await api.create_session(title=f"s{i}"))["id"] for i in range(7)]

    first = await api.call("GET", "/sessions", params={"limit": 3})
    body = first.json()
    assert body["total"] == 7
    assert [s["id"] for s in body["items"]] == created[:3]  # oldest first by default
    assert body["links"]["self"] == "/api/v1/sessions?limit=3"
    assert body["links"]["next"].startswith("/api/v1/sessions?limit=3&cursor=")

    # The Link header's target is a working request for the next page.
    target = first.headers["Link"].split(">")[0].removeprefix("<")
    second = await api.client.get(target, headers=api.as_("admin-token-of-tenant-a"))
    assert [s["id"] for s in second.json()["items"]] == created[3:6]

    items, pages = await _all_pages(api, "/sessions", limit=3)
    assert [s["id"] for s in items] == created
    assert pages == 3

    newest_first, _ = await _all_pages(api, "/sessions", limit=2, sort="-created_at")
    assert [s["id"] for s in newest_first] == created[::-1]


async def test_a_session_created_between_pages_is_neither_repeated_nor_skipped(api: Api) -> None:
    await api.create_agent()
    before = [(await api.create_session())["id"] for _ in range(4)]
    page = (await api.call("GET", "/sessions", params={"limit": 2})).json()
    deleted = await api.call("DELETE", f"/sessions/{before[0]}")  # an offset would shift
    assert deleted.status_code == 204
    late = (await api.create_session())["id"]
    rest = (
        await api.call("GET", "/sessions", params={"limit": 10, "cursor": page["next_cursor"]})
    ).json()
    assert [s["id"] for s in rest["items"]] == [*before[2:], late]


async def test_session_filters(api: Api) -> None:
    await api.create_agent("calc")
    await api.create_agent("other-agent")
    a = await api.create_session("calc", metadata={"user": "ann", "team": "x"})
    b = await api.create_session("calc", metadata={"user": "bob", "team": "x"})
    c = await api.create_session("other-agent", metadata={"user": "ann"})

    async def ids(**params: Any) -> list[str]:
        response = await api.call("GET", "/sessions", params=params)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == len(response.json()["items"])
        return [s["id"] for s in response.json()["items"]]

    assert await ids(agent="calc") == [a["id"], b["id"]]
    assert await ids(**{"metadata.user": "ann"}) == [a["id"], c["id"]]
    assert await ids(**{"metadata.user": "ann", "metadata.team": "x"}) == [a["id"]]
    assert await ids(status="idle") == [a["id"], b["id"], c["id"]]
    assert await ids(status="running") == []
    assert await ids(created_after=b["created_at"]) == [c["id"]]
    assert await ids(created_before=b["created_at"]) == [a["id"]]
    naive = datetime.fromisoformat(b["created_at"]).replace(tzinfo=None).isoformat()
    assert await ids(created_after=naive) == [c["id"]]  # no zone: UTC
    bad = await api.call("GET", "/sessions", params={"created_after": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["type"] == PROBLEM_BASE + "invalid-request"


async def test_unknown_sort_is_422_naming_the_allowed_fields(api: Api) -> None:
    response = await api.call("GET", "/sessions", params={"sort": "-colour"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "invalid-sort"
    assert problem["allowed"] == ["agent", "created_at", "turns", "updated_at"]
    assert "created_at" in problem["detail"]
    assert (await api.call("GET", "/agents", params={"sort": "turns"})).status_code == 422


@pytest.mark.parametrize("limit", [0, 501])
async def test_limit_is_bounded(api: Api, limit: int) -> None:
    response = await api.call("GET", "/sessions", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.limit"


async def test_tampered_or_foreign_cursor_is_422_invalid_cursor(api: Api) -> None:
    await api.create_agent()
    for _ in range(3):
        await api.create_session()
    cursor = (await api.call("GET", "/sessions", params={"limit": 1})).json()["next_cursor"]
    assert cursor

    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload, _, check = raw.rpartition(b".")
    data = json.loads(payload)
    data["k"] = "2000-01-01T00:00:00.000000"  # move the position, keep the old checksum
    forged = base64.urlsafe_b64encode(json.dumps(data).encode() + b"." + check).decode()
    cases = {
        "edited": forged,
        "garbage": "not-a-cursor!",
        "cut": cursor[:-5],
    }
    for name, bad in cases.items():
        response = await api.call("GET", "/sessions", params={"limit": 1, "cursor": bad})
        assert response.status_code == 422, name
        assert response.json()["type"] == PROBLEM_BASE + "invalid-cursor", name

    # A cursor belongs to its query: another sort or other filters refuse it...
    for params in ({"sort": "-created_at"}, {"agent": "calc"}):
        response = await api.call("GET", "/sessions", params={"cursor": cursor, **params})
        assert response.status_code == 422
        assert "another query" in response.json()["detail"]
    # ...but the page size may change from page to page.
    response = await api.call("GET", "/sessions", params={"limit": 5, "cursor": cursor})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 2


def test_cursor_round_trip_and_binding() -> None:
    cursor = encode_cursor("-created_at", "q1", "2026-01-01T00:00:00.000000", "ses_1")
    assert decode_cursor(cursor, sort="-created_at", query="q1") == (
        "2026-01-01T00:00:00.000000",
        "ses_1",
    )
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, sort="created_at", query="q1")
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, sort="-created_at", query="q2")


async def test_lists_stay_within_the_callers_tenant_on_every_page(api: Api) -> None:
    await api.create_agent()
    mine = [(await api.create_session())["id"] for _ in range(3)]
    await api.create_agent("b-agent", token=ADMIN_B)
    theirs = [(await api.create_session("b-agent", token=ADMIN_B))["id"] for _ in range(2)]
    items, _ = await _all_pages(api, "/sessions", limit=1)
    assert [s["id"] for s in items] == mine
    as_b = (await api.call("GET", "/sessions", ADMIN_B)).json()
    assert [s["id"] for s in as_b["items"]] == theirs
    assert as_b["total"] == 2


async def test_agents_page_sort_and_filter_by_source(api: Api) -> None:
    for name in ("delta", "alpha", "charlie", "bravo"):
        await api.create_agent(name)
    items, pages = await _all_pages(api, "/agents", limit=3)
    assert [a["name"] for a in items] == ["alpha", "bravo", "charlie", "delta"]
    assert pages == 2
    newest, _ = await _all_pages(api, "/agents", sort="-created_at")
    assert [a["name"] for a in newest] == ["bravo", "charlie", "alpha", "delta"]
    api_only = (await api.call("GET", "/agents", params={"source": "api"})).json()
    assert api_only["total"] == 4
    config_only = (await api.call("GET", "/agents", params={"source": "config"})).json()
    assert config_only == {
        "items": [],
        "total": 0,
        "next_cursor": None,
        "links": {"self": "/api/v1/agents?source=config", "next": None},
    }


async def test_api_keys_filter_by_revoked_active_and_scope(api: Api) -> None:
    async def create(*scopes: str) -> str:
        response = await api.call("POST", "/api-keys", json={"name": "k", "scopes": scopes})
        assert response.status_code == 201, response.text
        key_id: str = response.json()["id"]
        return key_id

    reader, invoker, admin = (
        await create("read"),
        await create("agent-invoke"),
        await create("admin"),
    )
    assert (await api.call("POST", f"/api-keys/{invoker}/revoke")).status_code == 200

    async def ids(**params: Any) -> list[str]:
        response = await api.call("GET", "/api-keys", params=params)
        assert response.status_code == 200, response.text
        return [k["id"] for k in response.json()["items"]]

    assert await ids() == [reader, invoker, admin]
    assert await ids(revoked="true") == [invoker]
    assert await ids(revoked="false") == [reader, admin]
    assert await ids(active="false") == [invoker]
    assert await ids(scope="read") == [reader]
    items, _pages = await _all_pages(api, "/api-keys", limit=2, sort="-created_at")
    assert [k["id"] for k in items] == [admin, invoker, reader]
    assert all("key" not in k and "hash" not in k for k in items)


async def test_tenants_page(api: Api) -> None:
    for tenant in ("t-c", "t-a", "t-b"):
        response = await api.call("POST", "/tenants", json={"id": tenant})
        assert response.status_code == 201, response.text
    items, pages = await _all_pages(api, "/tenants", limit=2)
    assert [t["id"] for t in items] == ["t-a", "t-b", "t-c"]
    assert pages == 2


async def test_messages_and_events_whole_by_default_paged_on_request(api: Api) -> None:
    await api.create_agent()
    session = (await api.create_session())["id"]
    for text in ("one", "two"):
        api.fake.script.push_text(f"answer {text}")
        response = await api.call("POST", f"/sessions/{session}/messages", json={"content": text})
        assert response.status_code == 200, response.text

    whole = (await api.call("GET", f"/sessions/{session}/messages")).json()
    assert [m["content"] for m in whole["items"]] == ["one", "answer one", "two", "answer two"]
    assert whole["total"] == 4
    assert whole["next_cursor"] is None
    items, pages = await _all_pages(api, f"/sessions/{session}/messages", limit=3)
    assert items == whole["items"]
    assert pages == 2
    newest = (
        await api.call("GET", f"/sessions/{session}/messages", params={"sort": "-position"})
    ).json()
    assert newest["items"] == whole["items"][::-1]

    events = (await api.call("GET", f"/sessions/{session}/events")).json()
    assert events["total"] == len(events["items"]) >= 4
    paged, _ = await _all_pages(api, f"/sessions/{session}/events", limit=2)
    assert paged == events["items"]
    after = (await api.call("GET", f"/sessions/{session}/events", params={"after": 2})).json()
    assert [e["id"] for e in after["items"]] == [e["id"] for e in events["items"][2:]]


async def test_dead_letters_filter_and_page(api: Api) -> None:
    await api.create_agent()
    sessions = [(await api.create_session())["id"] for _ in range(3)]
    for session in sessions:
        api.fake.script.push_error(401, message="bad key")  # auth: never retried
        response = await api.call("POST", f"/sessions/{session}/messages", json={"content": "hi"})
        assert response.status_code == 502, response.text

    all_letters = (await api.call("GET", "/deadletters")).json()
    assert all_letters["total"] == 3
    assert [x["session_id"] for x in all_letters["items"]] == sessions[::-1]  # newest first
    one = (await api.call("GET", "/deadletters", params={"session_id": sessions[1]})).json()
    assert [x["session_id"] for x in one["items"]] == [sessions[1]]
    by_class = all_letters["items"][0]["error_class"]
    assert (await api.call("GET", "/deadletters", params={"error_class": by_class})).json()[
        "total"
    ] == 3
    assert (await api.call("GET", "/deadletters", params={"error_class": "nope"})).json()[
        "total"
    ] == 0
    items, pages = await _all_pages(api, "/deadletters", limit=2, sort="created_at")
    assert [x["session_id"] for x in items] == sessions
    assert pages == 2
    assert (await api.call("GET", "/deadletters", ADMIN_B)).json()["total"] == 0
    # The old maximum page size still holds.
    assert (await api.call("GET", "/deadletters", params={"limit": 1000})).status_code == 200
