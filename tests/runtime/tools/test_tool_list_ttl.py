"""The tool list cache: trusted for its TTL, then listed again in the background on the
open connection, so a server that added a tool is seen without a reload."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mcp.server import MCPServer

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.testing.servers import running_server
from agentfleet_runtime.tools.mcp.demo_server import DemoServerApp
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

from .conftest import host_app


@contextlib.asynccontextmanager
async def growing_server() -> AsyncIterator[tuple[str, MCPServer]]:
    server = MCPServer("growing", version="1.0")

    @server.tool()
    def first() -> str:
        """The first tool."""
        return "1"

    app = server.streamable_http_app(streamable_http_path="/")
    demo = DemoServerApp(app=app, lifespan=server.session_manager.run)
    async with running_server(host_app(("/mcp", demo))) as running:
        yield f"{running.url}/mcp/", server


async def test_a_stale_tool_list_is_listed_again_in_the_background() -> None:
    async with growing_server() as (url, mcp):
        config = ResolvedMCPServer(name="grow", transport=MCPTransport.STREAMABLE_HTTP, url=url)
        registry = ToolRegistry([create_tool_server(config)], tool_list_ttl=0.2)
        try:
            await registry.start_all()
            assert [t.name for t in registry.tools()] == ["first"]

            @mcp.tool()
            def second() -> str:
                """Added while the agent runs."""
                return "2"

            assert [t.name for t in registry.tools()] == ["first"]  # still trusted
            await asyncio.sleep(0.3)
            registry.tools()  # stale: listed again in the background
            for _ in range(100):
                if len(registry.tools()) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(t.name for t in registry.tools()) == ["first", "second"]
        finally:
            await registry.aclose()
