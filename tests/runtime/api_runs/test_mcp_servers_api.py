"""The MCP servers API over real HTTP against real MCP servers: list and inspect (state,
protocol version, tools, which agents use it), hot reload, register/unregister (tenancy,
in use, cluster mode, stdio only for the operator tenant), secrets redacted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server import MCPServer

from agentfleet_runtime.testing.servers import running_demo_mcp

from .conftest import ADMIN, OTHER, READER, Api, MakeApi


@contextlib.asynccontextmanager
async def changing_server() -> AsyncIterator[tuple[MCPServer, str]]:
    """A real MCP server (streamable HTTP) whose tools the test changes while it runs."""
    server = MCPServer("changing")

    @server.tool()
    def ping() -> str:
        """Answer pong."""
        return "pong"

    async with running_demo_mcp(server) as url:
        yield server, url


async def test_config_servers_are_listed_with_state_tools_and_agents(api: Api) -> None:
    idle = (await api.get("/api/v1/mcp-servers")).json()
    [demo] = idle["items"]
    assert (demo["name"], demo["source"], demo["transport"]) == (
        "demo",
        "config",
        "streamable-http",
    )
    assert demo["state"] == "idle"
    assert demo["agents"] == []
    assert demo["tools"] is None

    assert (await api.create_agent()).status_code == 201
    demo = (await api.get("/api/v1/mcp-servers/demo", token=READER)).json()
    assert demo["state"] == "connected"
    assert demo["agents"] == ["calc"]
    assert demo["tools"] >= 4
    assert demo["protocol_version"]

    tools = (await api.get("/api/v1/mcp-servers/demo/tools")).json()
    calculate = next(t for t in tools["items"] if t["name"] == "calculate")
    assert calculate["description"]
    assert "expression" in calculate["input_schema"]["properties"]
    assert tools["total"] == demo["tools"]
    assert (await api.get("/api/v1/mcp-servers/nope")).status_code == 404


async def test_refresh_reloads_the_tools_agents_see(make_api: MakeApi) -> None:
    async with changing_server() as (server, url), make_api() as api:
        registered = await api.client.post(
            "/api/v1/mcp-servers",
            json={"name": "changing", "spec": {"url": url}},
            headers=api.as_(),
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["source"] == "api"
        # no agent uses it yet: its tools are listed over a connection of its own
        listed = (await api.get("/api/v1/mcp-servers/changing/tools")).json()
        assert [t["name"] for t in listed["items"]] == ["ping"]
        assert (await api.create_agent("pinger", ("changing",))).status_code == 201
        assert (await api.get("/api/v1/agents/pinger")).json()["tools"] == ["ping"]

        @server.tool()
        def pong() -> str:
            """Answer ping."""
            return "ping"

        # not seen until refreshed: the agent keeps its listing
        assert (await api.get("/api/v1/agents/pinger")).json()["tools"] == ["ping"]
        refused = await api.client.post(
            "/api/v1/mcp-servers/changing/refresh", headers=api.as_(READER)
        )
        assert refused.status_code == 403
        refreshed = await api.client.post("/api/v1/mcp-servers/changing/refresh", headers=api.as_())
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["tools"] == 2
        assert refreshed.json()["state"] == "connected"
        assert sorted((await api.get("/api/v1/agents/pinger")).json()["tools"]) == ["ping", "pong"]
        # and the agent's next turn is offered the new list
        sid = await api.session("pinger")
        assert (await api.say(sid, "hello")).status_code == 200
        offered = api.fake.script.requests[-1].body["tools"]
        assert sorted(t["function"]["name"] for t in offered) == ["ping", "pong"]


async def test_register_and_unregister_with_tenancy_and_in_use(api: Api) -> None:
    body = {
        "name": "remote",
        "spec": {"url": "https://bob:hunter2secret@tools.example.com/mcp?token=abcdef123&team=a"},
    }
    created = await api.client.post("/api/v1/mcp-servers", json=body, headers=api.as_())
    assert created.status_code == 201, created.text
    shown = created.json()
    assert "hunter2secret" not in created.text
    assert "abcdef123" not in created.text
    assert shown["url"].startswith("https://bob:")
    assert "team=a" in shown["url"]
    again = await api.client.post("/api/v1/mcp-servers", json=body, headers=api.as_())
    assert again.status_code == 409

    # the other tenant neither sees it nor can use it
    assert (await api.get("/api/v1/mcp-servers/remote", token=OTHER)).status_code == 404
    names = [s["name"] for s in (await api.get("/api/v1/mcp-servers", token=OTHER)).json()["items"]]
    assert names == ["demo"]
    assert (await api.create_agent("sneaky", ("remote",), token=OTHER)).status_code == 422
    gone = await api.client.delete("/api/v1/mcp-servers/remote", headers=api.as_(OTHER))
    assert gone.status_code == 404

    # in use: refused until its agent is gone
    assert (await api.create_agent("user", ("remote",))).status_code == 201
    busy = await api.client.delete("/api/v1/mcp-servers/remote", headers=api.as_())
    assert busy.status_code == 409
    assert busy.json()["agents"] == ["user"]
    assert (await api.client.delete("/api/v1/agents/user", headers=api.as_())).status_code == 204
    assert (
        await api.client.delete("/api/v1/mcp-servers/remote", headers=api.as_())
    ).status_code == 204
    assert (await api.get("/api/v1/mcp-servers/remote")).status_code == 404

    # config servers are read-only; stdio only for the operator tenant; hosted needs a cluster
    demo = await api.client.delete("/api/v1/mcp-servers/demo", headers=api.as_())
    assert demo.status_code == 409
    assert demo.json()["type"].endswith("/read-only")
    stdio = {
        "name": "local",
        "spec": {"stdio": {"command": "my-server", "args": ["--token=sekret99"]}},
    }
    other = await api.client.post("/api/v1/mcp-servers", json=stdio, headers=api.as_(OTHER))
    assert other.status_code == 403
    mine = await api.client.post("/api/v1/mcp-servers", json=stdio, headers=api.as_(ADMIN))
    assert mine.status_code == 201
    assert mine.json()["args"] == ["--token=[REDACTED]"]
    hosted = {"name": "hosted", "spec": {"hosted": {"image": "example/mcp:1"}}}
    refused = await api.client.post("/api/v1/mcp-servers", json=hosted, headers=api.as_())
    assert refused.status_code == 422


async def test_cluster_mode_is_read_only(make_api: MakeApi) -> None:
    async with make_api(cluster_mode=True) as api:
        body = {"name": "x", "spec": {"url": "https://tools.example.com/mcp"}}
        created = await api.client.post("/api/v1/mcp-servers", json=body, headers=api.as_())
        assert created.status_code == 409
        assert created.json()["type"].endswith("/read-only")
        deleted = await api.client.delete("/api/v1/mcp-servers/demo", headers=api.as_())
        assert deleted.status_code == 409
        assert (await api.get("/api/v1/mcp-servers")).json()["total"] == 1


async def test_pinned_tools_versions_and_a_failed_refresh_over_the_api(make_api: MakeApi) -> None:
    async with make_api() as api:
        async with changing_server() as (server, url):
            registered = await api.client.post(
                "/api/v1/mcp-servers",
                json={"name": "changing", "spec": {"url": url}},
                headers=api.as_(),
            )
            assert registered.status_code == 201, registered.text

            @server.tool()
            def lookup(query: str) -> str:
                """Look it up."""
                return query

            tools = (await api.get("/api/v1/mcp-servers/changing/tools")).json()["items"]
            hashes = {t["name"]: t["input_schema_hash"] for t in tools}
            assert hashes["lookup"].startswith("sha256:")

            def spec(pin: str) -> dict[str, object]:
                return {
                    "model": {"provider": "fake", "name": "fake-model"},
                    "tools": [
                        {
                            "mcpServerRef": {"name": "changing"},
                            "pinnedTools": [{"name": "lookup", "inputSchemaHash": pin}],
                        }
                    ],
                }

            created = await api.client.post(
                "/api/v1/agents",
                json={"name": "pinner", "spec": spec(hashes["lookup"])},
                headers=api.as_(),
            )
            assert created.status_code == 201, created.text
            shown = (await api.get("/api/v1/mcp-servers/changing")).json()
            assert shown["protocol_version"]
            assert shown["server_name"] == "changing"
            assert shown["incompatible_tools"] == []

            # a new agent version whose pins the server does not serve is refused; the old stays
            stale = "sha256:" + "0" * 64
            refused = await api.client.put(
                "/api/v1/agents/pinner", json={"spec": spec(stale)}, headers=api.as_()
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["type"].endswith("/agent-reload-failed")
            assert "lookup" in refused.json()["detail"]
            agent = (await api.get("/api/v1/agents/pinner")).json()
            assert (
                agent["spec"]["tools"][0]["pinnedTools"][0]["inputSchemaHash"] == hashes["lookup"]
            )
            assert sorted(agent["tools"]) == ["lookup", "ping"]

            # the server changes the pinned tool's schema: refreshed, it is withheld and shown
            server.remove_tool("lookup")

            @server.tool()
            def lookup(query: str, limit: int = 5) -> str:  # noqa: F811 - the new version
                """Look it up."""
                return query

            refreshed = await api.client.post(
                "/api/v1/mcp-servers/changing/refresh", headers=api.as_()
            )
            assert refreshed.status_code == 200, refreshed.text
            [flagged] = refreshed.json()["incompatible_tools"]
            assert (flagged["agent"], flagged["tool"], flagged["expected"]) == (
                "pinner",
                "lookup",
                hashes["lookup"],
            )
            assert flagged["actual"].startswith("sha256:")
            assert flagged["actual"] != hashes["lookup"]
            assert (await api.get("/api/v1/agents/pinner")).json()["tools"] == ["ping"]
            sid = await api.session("pinner")
            assert (await api.say(sid, "hello")).status_code == 200
            offered = api.fake.script.requests[-1].body["tools"]
            assert [t["function"]["name"] for t in offered] == ["ping"]
            metrics = (await api.client.get("/metrics")).text
            assert (
                'agentfleet_mcp_tool_schema_mismatch{server="changing",tool="lookup"} 1.0'
                in metrics
            )

        # the server is gone: a refresh cannot open a new connection; the old one is kept
        failed = await api.client.post("/api/v1/mcp-servers/changing/refresh", headers=api.as_())
        assert failed.status_code == 502, failed.text
        problem = failed.json()
        assert problem["type"].endswith("/mcp-reload-failed")
        assert problem["agents"]["pinner"]["outcome"] == "rolled_back"


async def test_a_registered_server_is_changed_in_place_with_a_switch_over(
    api: Api, demo_mcp_url: str
) -> None:
    async with running_demo_mcp() as second:
        body = {"name": "remote", "spec": {"url": demo_mcp_url}}
        created = await api.client.post("/api/v1/mcp-servers", json=body, headers=api.as_())
        assert created.status_code == 201, created.text
        assert (await api.create_agent("user", ("remote",))).status_code == 201
        loaded = api.app.state.service.loaded_agent("user", tenant="default")
        first_connection = loaded.tools.servers()["remote"]

        moved = await api.client.put(
            "/api/v1/mcp-servers/remote", json={"spec": {"url": second}}, headers=api.as_()
        )

        assert moved.status_code == 200, moved.text
        assert moved.json()["url"] == second
        now = loaded.tools.servers()["remote"]
        assert now is not first_connection  # switched over: a new connection...
        assert now.config.url == second  # ...to the new definition
        assert loaded.tools.health()["remote"].status == "available"
        shown = (await api.get("/api/v1/mcp-servers/remote")).json()
        assert shown["url"] == second

        # a definition that fails its checks changes nothing: the old one keeps serving
        dead = await api.client.put(
            "/api/v1/mcp-servers/remote",
            json={"spec": {"url": "http://127.0.0.1:9/mcp/"}},
            headers=api.as_(),
        )
        assert dead.status_code == 502, dead.text
        assert dead.json()["type"].endswith("/mcp-reload-failed")
        assert loaded.tools.servers()["remote"] is now
        assert (await api.get("/api/v1/mcp-servers/remote")).json()["url"] == second

        # another tenant cannot see it; manifests' servers are read-only
        other = await api.client.put(
            "/api/v1/mcp-servers/remote", json={"spec": {"url": second}}, headers=api.as_(OTHER)
        )
        assert other.status_code == 404
        config = await api.client.put(
            "/api/v1/mcp-servers/demo", json={"spec": {"url": second}}, headers=api.as_()
        )
        assert config.status_code == 409
