"""``MCPToolServer`` over stdio, against the demo server run as a real subprocess."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1.mcpserver import MCPTransport
from agentfleet_runtime.errors import DependencyConnectionError, DependencyTimeoutError
from agentfleet_runtime.tools.base import ToolResult, ToolServer
from agentfleet_runtime.tools.mcp.client import MCPToolServer

from .conftest import (
    demo_children,
    eventually,
    kill,
    slow_stdio_config,
    stdio_config,
    timeouts,
)

DEMO_TOOLS = {"calculate", "current_time", "convert_units", "text_stats", "remember", "recall"}


async def test_connects_lists_and_calls_tools() -> None:
    server = MCPToolServer(stdio_config())
    assert isinstance(server, ToolServer)
    async with server:
        assert server.connected
        tools = await server.list_tools()
        assert {tool.name for tool in tools} == DEMO_TOOLS
        calculate = next(tool for tool in tools if tool.name == "calculate")
        assert "arithmetic" in calculate.description
        assert calculate.input_schema["required"] == ["expression"]

        result = await server.call_tool("calculate", {"expression": "2 ** 16"})
        assert result == ToolResult(content="65536", is_error=False, structured={"result": 65536})

        converted = await server.call_tool(
            "convert_units", {"value": 1, "from_unit": "mi", "to_unit": "km"}
        )
        assert converted.structured is not None
        assert converted.structured["result"] == 1.609344
        assert '"result": 1.609344' in converted.content


async def test_tool_errors_are_results_not_exceptions() -> None:
    async with MCPToolServer(stdio_config()) as server:
        bad = await server.call_tool("calculate", {"expression": "1 / 0"})
        assert bad.is_error
        assert "division by zero" in bad.content
        assert bad.structured is None
        missing = await server.call_tool("recall", {"key": "nothing"})
        assert missing.is_error
        assert "nothing has been remembered" in missing.content
        unknown = await server.call_tool("no_such_tool", {})
        assert unknown.is_error
        assert "no_such_tool" in unknown.content


async def test_twenty_concurrent_calls_share_one_session() -> None:
    async with MCPToolServer(stdio_config()) as server:
        results = await asyncio.gather(
            *(server.call_tool("calculate", {"expression": f"{i} * {i}"}) for i in range(20))
        )
        assert [r.content for r in results] == [str(i * i) for i in range(20)]
        assert len(demo_children()) == 1


async def test_allowed_tools_filter_listing_and_calls() -> None:
    config = stdio_config(allowed_tools=["calculate", "text_stats", "not_offered"])
    async with MCPToolServer(config) as server:
        assert [t.name for t in await server.list_tools()] == ["calculate", "text_stats"]
        refused = await server.call_tool("remember", {"key": "a", "value": "b"})
        assert refused.is_error
        assert "not allowed" in refused.content


async def test_tool_listing_is_cached() -> None:
    async with MCPToolServer(stdio_config()) as server:
        first = await server.list_tools()
        [pid] = demo_children()
        kill(pid)
        await eventually(lambda: not server.connected)
        assert await server.list_tools() == first  # from the cache: no reconnect
        assert not server.connected
        assert await server.list_tools(refresh=True) == first  # lists again, reconnecting
        assert server.connected


async def test_reconnects_after_the_server_process_is_killed() -> None:
    async with MCPToolServer(stdio_config()) as server:
        await server.call_tool("remember", {"key": "k", "value": "v"})
        [first_pid] = demo_children()
        kill(first_pid)
        await eventually(lambda: not server.connected)

        result = await server.call_tool("calculate", {"expression": "1 + 1"})
        assert result.content == "2"
        [second_pid] = demo_children()
        assert second_pid != first_pid
        # A fresh process: the notes of the old one are gone.
        assert (await server.call_tool("recall", {"key": "k"})).is_error


async def test_a_call_in_flight_when_the_server_dies_is_not_resent() -> None:
    async with MCPToolServer(slow_stdio_config()) as server:
        [pid] = demo_children("slow-mcp-server")
        call = asyncio.create_task(server.call_tool("sleep", {"seconds": 5}))
        await asyncio.sleep(0.3)
        kill(pid)
        started = time.monotonic()
        with pytest.raises(DependencyConnectionError) as caught:
            await call  # not re-sent to a new process (the tool may have had effects)
        assert time.monotonic() - started < 2
        assert caught.value.dependency == "mcp:slow"
        # The next call reconnects.
        assert (await server.call_tool("sleep", {"seconds": 0})).content == "slept 0.0s"
        assert demo_children("slow-mcp-server") != [pid]


async def test_close_is_idempotent_and_stops_the_process() -> None:
    server = MCPToolServer(stdio_config())
    await server.start()
    await server.start()  # already connected: a no-op
    assert len(demo_children()) == 1
    started = time.monotonic()
    await server.aclose()
    await server.aclose()
    assert time.monotonic() - started < 5
    await eventually(lambda: not demo_children())
    with pytest.raises(DependencyConnectionError, match="closed"):
        await server.call_tool("calculate", {"expression": "1"})


async def test_a_server_that_exits_at_once_fails_fast() -> None:
    config = ResolvedMCPServer(
        name="quits",
        transport=MCPTransport.STDIO,
        command=sys.executable,
        args=["-c", "import sys; sys.exit(3)"],
    )
    started = time.monotonic()
    with pytest.raises(DependencyConnectionError) as caught:
        await MCPToolServer(config).start()
    assert time.monotonic() - started < 5
    assert caught.value.dependency == "mcp:quits"


async def test_a_missing_command_fails_fast() -> None:
    config = ResolvedMCPServer(
        name="missing", transport=MCPTransport.STDIO, command="/nonexistent/mcp-server"
    )
    with pytest.raises(DependencyConnectionError, match="nonexistent"):
        await MCPToolServer(config).start()


async def test_a_server_that_never_answers_times_out() -> None:
    config = ResolvedMCPServer(
        name="mute",
        transport=MCPTransport.STDIO,
        command=sys.executable,
        args=["-c", "import time; time.sleep(60)"],
        timeouts=timeouts(connect=0.5),
    )
    server = MCPToolServer(config)
    started = time.monotonic()
    with pytest.raises(DependencyTimeoutError, match=r"within 0.5s"):
        await server.list_tools()
    # The handshake bound, then the bounded shutdown of the mute process (stdin closed,
    # then SIGTERM after the SDK's 2 s grace).
    assert time.monotonic() - started < 5
    await server.aclose()


async def test_a_slow_call_times_out_and_the_session_survives() -> None:
    async with MCPToolServer(slow_stdio_config(timeouts=timeouts(call=0.3))) as server:
        started = time.monotonic()
        with pytest.raises(DependencyTimeoutError, match=r"within 0.3s"):
            await server.call_tool("sleep", {"seconds": 10})
        assert time.monotonic() - started < 1.5
        assert server.connected
        assert (await server.call_tool("sleep", {"seconds": 0.01})).content == "slept 0.01s"


async def test_environment_is_passed_to_the_process() -> None:
    config = ResolvedMCPServer(
        name="env",
        transport=MCPTransport.STDIO,
        command=sys.executable,
        args=[
            "-c",
            "import os, sys; from mcp.server import MCPServer\n"
            "s = MCPServer('env')\n"
            "@s.tool()\n"
            "def greeting() -> str:\n"
            "    return os.environ['GREETING']\n"
            "s.run()",
        ],
        env={"GREETING": "bonjour"},
    )
    async with MCPToolServer(config) as server:
        assert (await server.call_tool("greeting", {})).content == "bonjour"
