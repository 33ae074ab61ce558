"""The stdio → streamable-HTTP bridge that hosted stdio MCPServers run, with the real demo
server as the wrapped stdio process and the runtime's real MCP client on the HTTP side."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.testing.servers import free_port, running_server
from agentfleet_runtime.tools.mcp.bridge import StdioUpstream, bridge_app
from agentfleet_runtime.tools.mcp.client import MCPToolServer

DEMO = [sys.executable, "-m", "agentfleet_runtime.tools.mcp.demo_server", "--transport", "stdio"]


def _client(url: str) -> MCPToolServer:
    return MCPToolServer(
        ResolvedMCPServer(name="bridged", transport=MCPTransport.STREAMABLE_HTTP, url=url)
    )


def _upstream_pids() -> list[int]:
    """The demo server processes this test process started (the bridge's upstream)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"demo_server" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
async def bridged() -> AsyncIterator[tuple[MCPToolServer, StdioUpstream]]:
    app, upstream = bridge_app(DEMO, timeout_seconds=20)
    async with running_server(app) as server:
        client = _client(f"{server.url}/mcp")
        await client.start()
        try:
            yield client, upstream
        finally:
            await client.aclose()
            await upstream.aclose()


async def test_the_bridge_forwards_tools_results_and_tool_errors(
    bridged: tuple[MCPToolServer, StdioUpstream],
) -> None:
    client, upstream = bridged
    tools = {t.name: t for t in await client.list_tools()}
    assert {"calculate", "remember", "recall"} <= set(tools)
    assert tools["calculate"].input_schema["required"] == ["expression"]
    result = await client.call_tool("calculate", {"expression": "6*7"})
    assert (result.content, result.is_error) == ("42", False)
    failed = await client.call_tool("calculate", {"expression": "1/0"})
    assert failed.is_error
    assert "division by zero" in failed.content
    results = await asyncio.gather(
        *(client.call_tool("calculate", {"expression": f"{i}+1"}) for i in range(10))
    )
    assert [r.content for r in results] == [str(i + 1) for i in range(10)]
    assert upstream.starts == 1  # one long-lived stdio session serves every request


async def test_a_dead_upstream_is_restarted_on_the_next_request(
    bridged: tuple[MCPToolServer, StdioUpstream],
) -> None:
    client, upstream = bridged
    await client.call_tool("remember", {"key": "k", "value": "v"})
    assert '"value": "v"' in (await client.call_tool("recall", {"key": "k"})).content
    (pid,) = _upstream_pids()
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.3)
    # The request that meets the dead process may fail; the bridge then starts a new one.
    for _ in range(3):
        result = await client.call_tool("calculate", {"expression": "2+2"})
        if not result.is_error:
            break
    assert result.content == "4"
    assert upstream.starts == 2
    assert _upstream_pids() != [pid]
    recalled = await client.call_tool("recall", {"key": "k"})
    assert recalled.is_error  # a fresh process: its notes are gone, proving the restart


async def test_the_mcp_bridge_command_serves_a_stdio_server() -> None:
    port = free_port()
    bridge = str(Path(sys.executable).parent / "mcp-bridge")
    proc = await asyncio.create_subprocess_exec(
        bridge, "--port", str(port), "--", *DEMO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    client = _client(f"http://127.0.0.1:{port}/mcp")
    try:
        for _ in range(100):
            try:
                await client.start()
                break
            except Exception:
                await asyncio.sleep(0.1)
        result = await client.call_tool(
            "convert_units", {"value": 1, "from_unit": "km", "to_unit": "m"}
        )
        assert not result.is_error
        assert "1000" in result.content
    finally:
        await client.aclose()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=15)
