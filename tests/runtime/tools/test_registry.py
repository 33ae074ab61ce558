"""``ToolRegistry`` over real MCP servers: start-up with servers down, unique names, routing,
and structured results for unknown tools and unavailable servers."""

from __future__ import annotations

import time

from agentfleet_runtime.tools.base import ToolServer
from agentfleet_runtime.tools.mcp.client import MCPToolServer
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

from .conftest import (
    black_hole,
    dead_url,
    http_config,
    serve_mounted_demo,
    serve_slow,
    stdio_config,
    timeouts,
)

DEMO_TOOLS = ["calculate", "current_time", "convert_units", "text_stats", "remember", "recall"]


def test_create_tool_server_speaks_mcp() -> None:
    server = create_tool_server(stdio_config())
    assert isinstance(server, MCPToolServer)
    assert isinstance(server, ToolServer)
    assert server.name == "demo"


async def test_servers_that_fail_do_not_block_the_others() -> None:
    async with serve_mounted_demo() as demo, black_hole() as hole:
        registry = ToolRegistry(
            [
                create_tool_server(http_config(demo.url + "/mcp/demo/")),
                create_tool_server(http_config(dead_url(), name="gone")),
                create_tool_server(http_config(hole, name="mute", timeouts=timeouts(connect=0.5))),
            ]
        )
        assert {h.status for h in registry.health().values()} == {"pending"}
        started = time.monotonic()
        await registry.start_all()
        assert time.monotonic() - started < 3  # concurrent, each bounded

        health = registry.health()
        assert health["demo"].status == "available"
        assert health["demo"].tools == 6
        assert health["gone"].status == "unavailable"
        assert health["gone"].reason is not None
        assert "connect" in health["gone"].reason
        assert health["mute"].status == "unavailable"
        assert (
            health["mute"].reason == "MCP server 'mute' did not complete the handshake within 0.5s"
        )
        assert registry.degraded
        assert health["gone"].as_dict()["status"] == "unavailable"

        assert [tool.name for tool in registry.tools()] == DEMO_TOOLS
        result = await registry.call("calculate", {"expression": "40 + 2"})
        assert result.content == "42"
        assert not result.is_error
        await registry.aclose()
        assert {h.status for h in registry.health().values()} == {"closed"}


async def test_unknown_tools_get_a_structured_answer() -> None:
    async with serve_mounted_demo() as demo:
        registry = ToolRegistry([create_tool_server(http_config(demo.url + "/mcp/demo/"))])
        await registry.start_all()
        result = await registry.call("launch_rockets", {})
        assert result.is_error
        assert result.content.startswith("Unknown tool 'launch_rockets'. The tools available are:")
        assert "calculate" in result.content
        await registry.aclose()


async def test_tool_errors_pass_through_as_results() -> None:
    async with serve_mounted_demo() as demo:
        registry = ToolRegistry([create_tool_server(http_config(demo.url + "/mcp/demo/"))])
        await registry.start_all()
        result = await registry.call("calculate", {"expression": "1 / 0"})
        assert result.is_error
        assert "division by zero" in result.content
        assert registry.health()["demo"].status == "available"  # a tool error is not an outage
        await registry.aclose()


async def test_clashing_names_are_prefixed_with_the_server() -> None:
    async with serve_mounted_demo() as demo:
        url = demo.url + "/mcp/demo/"
        registry = ToolRegistry(
            [
                create_tool_server(http_config(url, name="alpha")),
                create_tool_server(
                    http_config(url, name="beta.tools", allowed_tools=["calculate", "recall"])
                ),
                create_tool_server(stdio_config(name="gamma", allowed_tools=["text_stats"])),
            ]
        )
        await registry.start_all()
        names = [tool.name for tool in registry.tools()]
        assert names == [
            "alpha__calculate",
            "current_time",
            "convert_units",
            "alpha__text_stats",
            "remember",
            "alpha__recall",
            "beta_tools__calculate",  # "." is not allowed in tool names: replaced
            "beta_tools__recall",
            "gamma__text_stats",
        ]
        specs = {tool.name: tool for tool in registry.tools()}
        assert specs["alpha__calculate"].input_schema["required"] == ["expression"]
        assert "arithmetic" in specs["beta_tools__calculate"].description

        assert (await registry.call("alpha__calculate", {"expression": "2*3"})).content == "6"
        assert (await registry.call("beta_tools__calculate", {"expression": "2*4"})).content == "8"
        stats = await registry.call("gamma__text_stats", {"text": "a b c"})
        assert stats.structured is not None
        assert stats.structured["words"] == 3
        assert (await registry.call("calculate", {"expression": "1"})).is_error  # ambiguous
        await registry.aclose()


async def test_a_server_that_goes_down_gives_an_unavailable_result() -> None:
    async with serve_mounted_demo() as demo:
        port = demo.port
        registry = ToolRegistry([create_tool_server(http_config(demo.url + "/mcp/demo/"))])
        await registry.start_all()
        assert not (await registry.call("calculate", {"expression": "1"})).is_error

    started = time.monotonic()
    result = await registry.call("calculate", {"expression": "1 + 1"})
    assert time.monotonic() - started < 2
    assert result.is_error
    assert result.content.startswith("Tool calculate is unavailable (server demo: ")
    assert result.content.endswith("). Do not call it again in this turn.")
    assert registry.health()["demo"].status == "unavailable"
    assert registry.degraded is True
    assert [tool.name for tool in registry.tools()] == DEMO_TOOLS  # still offered

    async with serve_mounted_demo(port=port):  # back: the next call reconnects
        assert (await registry.call("calculate", {"expression": "1 + 1"})).content == "2"
        assert registry.health()["demo"].status == "available"
    await registry.aclose()


async def test_a_timed_out_call_is_an_unavailable_result() -> None:
    async with serve_slow() as url:
        registry = ToolRegistry(
            [create_tool_server(http_config(url, name="slow", timeouts=timeouts(call=0.3)))]
        )
        await registry.start_all()
        result = await registry.call("sleep", {"seconds": 5})
        assert result.is_error
        assert "Tool sleep is unavailable (server slow: " in result.content
        assert "did not answer within 0.3s" in result.content
        health = registry.health()["slow"]  # a slow call is not an outage
        assert health.status == "available"
        assert health.reason is not None
        assert "did not answer" in health.reason
        await registry.aclose()


async def test_refresh_retries_servers_that_were_down() -> None:
    async with serve_mounted_demo() as demo:
        port, url = demo.port, demo.url + "/mcp/demo/"
    registry = ToolRegistry([create_tool_server(http_config(url))])
    await registry.start_all()
    assert registry.health()["demo"].status == "unavailable"
    assert registry.tools() == []
    async with serve_mounted_demo(port=port):
        await registry.refresh()
        assert registry.health()["demo"].status == "available"
        assert [tool.name for tool in registry.tools()] == DEMO_TOOLS
        await registry.refresh()  # nothing to retry: a no-op
    await registry.aclose()
    await registry.aclose()  # idempotent


async def test_an_agent_without_tools() -> None:
    registry = ToolRegistry([])
    await registry.start_all()
    assert registry.tools() == []
    assert registry.health() == {}
    assert (await registry.call("calculate", {})).content == (
        "Unknown tool 'calculate'. The tools available are: none."
    )
    await registry.aclose()
