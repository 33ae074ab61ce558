"""Hot reload with a health-checked switch-over, against real MCP servers on real ports:
a new connection is opened and checked before it is swapped in, calls in flight on the
old one finish before it is closed (bounded), a new connection that fails its checks is
rolled back, and the protocol version each connection negotiated is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mcp.server import MCPServer
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentfleet_runtime.testing.servers import running_server
from agentfleet_runtime.tools.mcp.client import MCPToolServer
from agentfleet_runtime.tools.mcp.demo_server import DemoServerApp
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

from .conftest import dead_url, host_app, http_config, timeouts


@dataclass
class Labelled:
    """A real MCP server that says which one it is (``whoami``) and can be slow
    (``sleep``, which sets ``started`` when it begins)."""

    label: str
    server: MCPServer
    started: asyncio.Event
    url: str = ""


def build_labelled(label: str) -> Labelled:
    server = MCPServer(f"{label}-server", version=f"{label}.1.0")
    started = asyncio.Event()

    @server.tool()
    def whoami() -> str:
        """Say which server this is."""
        return label

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Sleep, then say so."""
        started.set()
        await asyncio.sleep(seconds)
        return f"{label} slept {seconds}s"

    return Labelled(label=label, server=server, started=started)


@contextlib.asynccontextmanager
async def serve_labelled(label: str) -> AsyncIterator[Labelled]:
    labelled = build_labelled(label)
    app = labelled.server.streamable_http_app(streamable_http_path="/")
    demo = DemoServerApp(app=app, lifespan=labelled.server.session_manager.run)
    async with running_server(host_app(("/mcp", demo))) as running:
        labelled.url = f"{running.url}/mcp/"
        yield labelled


def config(url: str, **kwargs: object) -> object:
    return http_config(
        url, name="svc", timeouts=timeouts(connect=3, call=10, discovery=3), **kwargs
    )


def reloads(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentfleet_mcp_reloads_total", {"server": "svc", "outcome": outcome}
    )
    return value or 0.0


async def started_registry(url: str, **kwargs: float) -> ToolRegistry:
    registry = ToolRegistry([create_tool_server(config(url))], **kwargs)  # type: ignore[arg-type]
    await registry.start_all()
    assert registry.health()["svc"].status == "available"
    return registry


async def test_url_change_switches_over_while_the_old_connection_drains() -> None:
    async with serve_labelled("a") as a, serve_labelled("b") as b:
        registry = await started_registry(a.url)
        try:
            old = registry.servers()["svc"]
            assert isinstance(old, MCPToolServer)
            switched_before = reloads("switched")
            in_flight = asyncio.create_task(registry.call("sleep", {"seconds": 1.0}))
            await asyncio.wait_for(a.started.wait(), 5)

            result = await registry.reload("svc", config(b.url))  # type: ignore[arg-type]

            assert result.outcome == "switched", result
            assert reloads("switched") == switched_before + 1
            # new calls go to the new server at once...
            assert (await registry.call("whoami", {})).content == "b"
            assert registry.servers()["svc"] is not old
            # ...while the call in flight on the old connection finishes there
            assert not old.closed
            done = await in_flight
            assert not done.is_error, done
            assert done.content == "a slept 1.0s"
            # and then the old connection is closed
            await asyncio.wait_for(registry.drained(), 5)
            assert old.closed
            assert not old.connected
            health = registry.health()["svc"]
            assert health.status == "available"
            assert health.last_reload == "switched"
            assert health.server_name == "b-server"
        finally:
            await registry.aclose()


async def test_draining_is_bounded() -> None:
    async with serve_labelled("a") as a, serve_labelled("b") as b:
        registry = await started_registry(a.url, drain_seconds=0.3)
        try:
            old = registry.servers()["svc"]
            in_flight = asyncio.create_task(registry.call("sleep", {"seconds": 5.0}))
            await asyncio.wait_for(a.started.wait(), 5)
            assert (await registry.reload("svc", config(b.url))).outcome == "switched"  # type: ignore[arg-type]
            await asyncio.wait_for(registry.drained(), 5)  # long before the 5 s call ends
            assert isinstance(old, MCPToolServer)
            assert old.closed
            cut = await asyncio.wait_for(in_flight, 5)
            assert cut.is_error  # the call cut by the close gets a structured answer
            assert cut.structured is not None
            assert cut.structured["error"] == "unavailable"
            # the failure of the replaced connection does not mark the new one down
            assert registry.health()["svc"].status == "available"
            assert (await registry.call("whoami", {})).content == "b"
        finally:
            await registry.aclose()


async def test_a_broken_url_is_rolled_back_and_the_old_connection_keeps_serving() -> None:
    async with serve_labelled("a") as a:
        registry = await started_registry(a.url)
        try:
            old = registry.servers()["svc"]
            rolled_back_before = reloads("rolled_back")

            result = await registry.reload("svc", config(dead_url()))  # type: ignore[arg-type]

            assert result.outcome == "rolled_back"
            assert result.reason is not None
            assert "svc" in result.reason
            assert reloads("rolled_back") == rolled_back_before + 1
            assert registry.servers()["svc"] is old
            assert isinstance(old, MCPToolServer)
            assert not old.closed
            assert old.config.url == a.url  # the bad config was not adopted
            health = registry.health()["svc"]
            assert health.status == "available"
            assert health.last_reload == "rolled_back"
            assert health.last_reload_reason == result.reason
            assert (await registry.call("whoami", {})).content == "a"
        finally:
            await registry.aclose()


async def test_a_refresh_of_a_server_that_stays_down_fails_without_a_connection() -> None:
    registry = ToolRegistry([create_tool_server(config(dead_url()))])  # type: ignore[arg-type]
    await registry.start_all()
    try:
        assert registry.health()["svc"].status == "unavailable"
        result = await registry.reload("svc")
        assert result.outcome == "failed"
        assert registry.health()["svc"].status == "unavailable"
    finally:
        await registry.aclose()


async def test_a_refresh_switches_to_a_fresh_connection_to_the_same_server() -> None:
    async with serve_labelled("a") as a:
        registry = await started_registry(a.url)
        try:
            old = registry.servers()["svc"]

            @a.server.tool()
            def added() -> str:
                """A tool added while the agent runs."""
                return "new"

            assert "added" not in {t.name for t in registry.tools()}
            assert (await registry.reload("svc")).outcome == "switched"
            assert "added" in {t.name for t in registry.tools()}
            await registry.drained()
            assert isinstance(old, MCPToolServer)
            assert old.closed
        finally:
            await registry.aclose()


async def test_the_negotiated_protocol_version_and_server_info_are_recorded() -> None:
    async with serve_labelled("a") as a:
        registry = await started_registry(a.url)
        try:
            health = registry.health()["svc"]
            assert health.protocol_version in KNOWN_PROTOCOL_VERSIONS
            assert (health.server_name, health.server_version) == ("a-server", "a.1.0")
            assert health.as_dict()["protocol_version"] == health.protocol_version
            labels = {
                "server": "svc",
                "protocol_version": health.protocol_version,
                "server_version": "a.1.0",
            }
            assert REGISTRY.get_sample_value("agentfleet_mcp_server_info", labels) == 1.0
        finally:
            await registry.aclose()
        # a closed registry no longer counts
        assert REGISTRY.get_sample_value("agentfleet_mcp_server_info", labels) == 0.0


def ancient_server() -> Starlette:
    """A streamable-HTTP JSON-RPC endpoint that knows no ``server/discover`` and answers
    ``initialize`` with a protocol version no SDK speaks."""

    async def rpc(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405)
        message = json.loads(await request.body())
        if "id" not in message:  # a notification
            return Response(status_code=202)
        if message["method"] == "initialize":
            result = {
                "protocolVersion": "1999-01-01",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "ancient", "version": "0.0.1"},
            }
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})
        error = {"code": -32601, "message": "Method not found"}
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": error})

    return Starlette(routes=[Route("/mcp/", rpc, methods=["GET", "POST", "DELETE"])])


async def test_an_unsupported_protocol_version_is_a_clear_reason() -> None:
    async with running_server(ancient_server()) as running:
        registry = ToolRegistry([create_tool_server(config(f"{running.url}/mcp/"))])  # type: ignore[arg-type]
        await registry.start_all()
        try:
            health = registry.health()["svc"]
            assert health.status == "unavailable"
            assert health.reason is not None
            assert "speaks no MCP protocol version this client supports" in health.reason
            assert "1999-01-01" in health.reason
        finally:
            await registry.aclose()
