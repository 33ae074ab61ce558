"""Two replicas (two apps) on one real redis-server: the audit log and the MCP servers
registered through the API are shared — an action on one is listed by the other (tenant
scoped), a server registered on one is usable by the other's agents, a replica started
later loads it, and unregistering on one removes it (and its connections) on the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)

from .conftest import OTHER, MakeApi


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(10):
        while not await check():  # noqa: ASYNC110 (polling other replicas)
            await asyncio.sleep(0.05)


async def test_audit_events_of_every_replica_are_listed(
    make_api: MakeApi, redis: RedisServer
) -> None:
    state = StateSettings(backend="redis", redis_url=redis.url)
    async with (
        make_api(state=state, replica_id="a") as a,
        make_api(state=state, replica_id="b") as b,
    ):
        key = await a.client.post(
            "/api/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=a.as_()
        )
        assert key.status_code == 201, key.text

        async def b_sees_it() -> bool:
            listed = (await b.get("/api/v1/audit", action="api_key.created")).json()
            return listed["total"] == 1

        await until(b_sees_it)
        assert (
            await b.client.post("/api/v1/tenants", json={"id": "acme"}, headers=b.as_())
        ).status_code == 201

        async def a_sees_both() -> bool:
            return (await a.get("/api/v1/audit")).json()["total"] == 2

        await until(a_sees_both)
        first = (await a.get("/api/v1/audit", limit=1)).json()
        assert [e["action"] for e in first["items"]] == ["tenant.created"]  # newest first
        second = (await a.get("/api/v1/audit", limit=1, cursor=first["next_cursor"])).json()
        [created] = second["items"]
        assert (created["action"], created["actor"], created["subject"]) == (
            "api_key.created",
            "alice",
            key.json()["id"],
        )

        # tenant isolation: the other tenant sees only its own, on either replica
        assert (await b.get("/api/v1/audit", token=OTHER)).json()["items"] == []
        theirs = await b.client.post(
            "/api/v1/api-keys", json={"name": "bob-ci", "scopes": ["read"]}, headers=b.as_(OTHER)
        )
        assert theirs.status_code == 201

        async def other_sees_its_own() -> bool:
            return (await a.get("/api/v1/audit", token=OTHER)).json()["total"] == 1

        await until(other_sees_its_own)
        assert (await a.get("/api/v1/audit", token=OTHER)).json()["items"][0]["actor"] == "bob"
        assert (await a.get("/api/v1/audit", actor="bob")).json()["total"] == 0

        # filters: outcome, actor, since/until
        assert (await a.get("/api/v1/audit", outcome="ok", actor="alice")).json()["total"] == 2
        assert (await a.get("/api/v1/audit", outcome="denied")).json()["total"] == 0
        at = created["at"]
        assert (await a.get("/api/v1/audit", until=at)).json()["total"] == 1
        assert (await a.get("/api/v1/audit", since=at)).json()["total"] == 2
        bad = await a.get("/api/v1/audit", until="yesterday")
        assert bad.status_code == 422

        # refused credentials on one replica: the operator tenant's admins see them on any
        assert (await a.get("/api/v1/sessions", token="not-a-valid-token")).status_code == 401

        async def refused_seen() -> bool:
            listed = (await b.get("/api/v1/audit", action="auth.failed")).json()
            return listed["total"] == 1

        await until(refused_seen)
        assert (await b.get("/api/v1/audit", token=OTHER, action="auth.failed")).json()[
            "total"
        ] == 0


async def test_mcp_servers_registered_on_one_replica_are_everywhere(
    make_api: MakeApi, redis: RedisServer, demo_mcp_url: str
) -> None:
    state = StateSettings(backend="redis", redis_url=redis.url)
    async with (
        make_api(state=state, replica_id="a", servers={}) as a,
        make_api(state=state, replica_id="b", servers={}) as b,
    ):
        body = {"name": "tools", "spec": {"url": demo_mcp_url}}
        created = await a.client.post("/api/v1/mcp-servers", json=body, headers=a.as_())
        assert created.status_code == 201, created.text

        async def b_lists_it() -> bool:
            return (await b.get("/api/v1/mcp-servers/tools")).status_code == 200

        await until(b_lists_it)
        shown = (await b.get("/api/v1/mcp-servers/tools")).json()
        assert (shown["source"], shown["created_at"]) == ("api", created.json()["created_at"])
        assert (await b.get("/api/v1/mcp-servers/tools", token=OTHER)).status_code == 404
        again = await b.client.post("/api/v1/mcp-servers", json=body, headers=b.as_())
        assert again.status_code == 409  # one name, whichever replica is asked

        # an agent created on a runs on b with the server's tools
        assert (await a.create_agent("calc", ("tools",))).status_code == 201
        sid = await b.session("calc")
        turn = (await b.say(sid, "calculate 5*5")).json()["turn_id"]
        run = (await b.get(f"/api/v1/runs/{turn}")).json()
        assert run["status"] == "completed"
        assert [c["name"] for c in run["tool_calls"]] == ["calculate"]
        connected = (await b.get("/api/v1/mcp-servers/tools")).json()
        assert (connected["state"], connected["agents"]) == ("connected", ["calc"])
        assert "default/calc" in b.app.state.service.tool_registries()

        # a replica started later loads it at start-up
        async with make_api(state=state, replica_id="c", servers={}) as c:
            assert (await c.get("/api/v1/mcp-servers/tools")).status_code == 200

        # unregistered on a: gone on b, and b's stale agent (with its connection) dropped
        assert (await a.client.delete("/api/v1/agents/calc", headers=a.as_())).status_code == 204
        gone = await a.client.delete("/api/v1/mcp-servers/tools", headers=a.as_())
        assert gone.status_code == 204

        async def b_forgot_it() -> bool:
            return (await b.get("/api/v1/mcp-servers/tools")).status_code == 404

        await until(b_forgot_it)

        async def b_closed_it() -> bool:
            return "default/calc" not in b.app.state.service.tool_registries()

        await until(b_closed_it)
        refused = await b.create_agent("again", ("tools",))
        assert refused.status_code == 422
