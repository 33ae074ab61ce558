"""Tools pinned by name and input-schema hash, against real MCP servers: a pinned tool the
server lists with another schema (or no longer lists) is withheld from the model, reported
in health and a metric, and answered "unavailable" if called anyway; a server definition
whose pinned tools do not match is not switched to."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.server import MCPServer
from prometheus_client import REGISTRY

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.toolschema import input_schema_hash
from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_runtime.loader import resolve_agent
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.testing.servers import running_server
from agentfleet_runtime.tools.mcp.demo_server import DemoServerApp
from agentfleet_runtime.tools.registry import ToolRegistry, check_pins, create_tool_server

from .conftest import host_app, http_config, timeouts

LOOKUP_V1 = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
}


def add_lookup(server: MCPServer, *, version: int) -> None:
    if version == 1:

        @server.tool()
        def lookup(query: str) -> str:
            """Look something up."""
            return f"v1:{query}"

    else:

        @server.tool()
        def lookup(query: str, region: str = "eu") -> str:  # an additive change
            """Look something up."""
            return f"v2:{query}:{region}"


def build_server(version: int) -> MCPServer:
    server = MCPServer(f"lookup-v{version}")
    add_lookup(server, version=version)

    @server.tool()
    def echo(text: str) -> str:
        """Say it back."""
        return text

    return server


@contextlib.asynccontextmanager
async def serve(server: MCPServer) -> AsyncIterator[str]:
    app = server.streamable_http_app(streamable_http_path="/")
    demo = DemoServerApp(app=app, lifespan=server.session_manager.run)
    async with running_server(host_app(("/mcp", demo))) as running:
        yield f"{running.url}/mcp/"


def config(url: str, pins: dict[str, str] | None) -> ResolvedMCPServer:
    return http_config(
        url, name="pinned", timeouts=timeouts(connect=3, discovery=3), pinned_tools=pins
    )


async def current_hash(url: str, tool: str) -> str:
    registry = ToolRegistry([create_tool_server(config(url, None))])
    await registry.start_all()
    try:
        spec = next(s for s in registry.server_tools("pinned") if s.name == tool)
        return input_schema_hash(spec.input_schema)
    finally:
        await registry.aclose()


def mismatch_metric(tool: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentfleet_mcp_tool_schema_mismatch", {"server": "pinned", "tool": tool}
    )
    return value or 0.0


# -- the hash ------------------------------------------------------------------------------


def test_the_hash_is_of_canonical_json_and_exact() -> None:
    reordered = {"required": ["query"], "properties": {"query": {"type": "string"}}}
    reordered["type"] = "object"
    digest = input_schema_hash(LOOKUP_V1)
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64
    assert input_schema_hash(reordered) == digest  # key order does not matter
    widened = {**LOOKUP_V1, "properties": {**LOOKUP_V1["properties"], "region": {}}}
    assert input_schema_hash(widened) != digest  # an additive change is a change
    # a fixed value, so the operator, the runtime and a user's script agree
    assert input_schema_hash({"type": "object"}) == (
        "sha256:" + __import__("hashlib").sha256(b'{"type":"object"}').hexdigest()
    )


def test_check_pins_reports_changed_and_missing_tools() -> None:
    specs = [ToolSpec("lookup", "", LOOKUP_V1), ToolSpec("echo", "", {"type": "object"})]
    good = input_schema_hash(LOOKUP_V1)
    assert check_pins(specs, {"lookup": good}) == []
    assert check_pins(specs, None) == []
    wrong = "sha256:" + "0" * 64
    [missing, changed] = check_pins(specs, {"lookup": wrong, "gone": good})  # by name
    assert (changed.tool, changed.expected, changed.actual) == ("lookup", wrong, good)
    assert (missing.tool, missing.actual) == ("gone", None)
    assert "not listed" in missing.reason


def test_pins_reach_the_runtime_config_and_must_name_allowed_tools() -> None:
    digest = input_schema_hash(LOOKUP_V1)
    spec = AgentSpec.model_validate(
        {
            "model": {"provider": "fake", "name": "m"},
            "tools": [
                {
                    "mcpServerRef": {"name": "pinned"},
                    "pinnedTools": [{"name": "lookup", "inputSchemaHash": digest}],
                }
            ],
        }
    )
    server = config("http://127.0.0.1:1/mcp/", None)
    resolved = resolve_agent("a", spec, {"pinned": server}, {})
    assert resolved.mcp_servers[0].pinned_tools == {"lookup": digest}
    with pytest.raises(ValueError, match="allowedTools"):
        AgentSpec.model_validate(
            {
                "model": {"provider": "fake", "name": "m"},
                "tools": [
                    {
                        "mcpServerRef": {"name": "pinned"},
                        "allowedTools": ["echo"],
                        "pinnedTools": [{"name": "lookup", "inputSchemaHash": digest}],
                    }
                ],
            }
        )
    with pytest.raises(ValueError, match=r"inputSchemaHash|input_schema_hash"):
        AgentSpec.model_validate(
            {
                "model": {"provider": "fake", "name": "m"},
                "tools": [
                    {
                        "mcpServerRef": {"name": "pinned"},
                        "pinnedTools": [{"name": "lookup", "inputSchemaHash": "md5:abc"}],
                    }
                ],
            }
        )


# -- against real servers ------------------------------------------------------------------


async def test_a_pinned_tool_whose_schema_changes_on_refresh_is_flagged_and_withheld() -> None:
    server = build_server(1)
    async with serve(server) as url:
        pinned = await current_hash(url, "lookup")
        registry = ToolRegistry([create_tool_server(config(url, {"lookup": pinned}))])
        await registry.start_all()
        try:
            assert {t.name for t in registry.tools()} == {"lookup", "echo"}
            assert registry.health()["pinned"].incompatible_tools == ()
            assert (await registry.call("lookup", {"query": "x"})).content == "v1:x"

            server.remove_tool("lookup")
            add_lookup(server, version=2)
            result = await registry.reload("pinned")

            assert result.outcome == "switched"  # same server: what it lists now counts
            assert {t.name for t in registry.tools()} == {"echo"}  # withheld
            health = registry.health()["pinned"]
            assert health.status == "available"
            [mismatch] = health.incompatible_tools
            assert mismatch.tool == "lookup"
            assert mismatch.expected == pinned
            assert mismatch.actual == await current_hash(url, "lookup") != pinned
            assert health.as_dict()["incompatible_tools"] == [
                {"tool": "lookup", "expected": pinned, "actual": mismatch.actual}
            ]
            assert mismatch_metric("lookup") == 1.0
            # a model that calls it anyway is told it is unavailable, not to retry
            refused = await registry.call("lookup", {"query": "x"})
            assert refused.is_error
            assert refused.structured is not None
            assert refused.structured["error"] == "unavailable"
            assert refused.structured["retry"] is False
            assert "changed its input schema" in refused.content
            # the server's other tools keep serving
            assert (await registry.call("echo", {"text": "hi"})).content == "hi"

            # re-pinning to the new hash (or the server going back) clears the flag
            server.remove_tool("lookup")
            add_lookup(server, version=1)
            await registry.reload("pinned")
            assert {t.name for t in registry.tools()} == {"lookup", "echo"}
            assert mismatch_metric("lookup") == 0.0
        finally:
            await registry.aclose()


async def test_a_pinned_tool_the_server_does_not_list_is_flagged_at_start() -> None:
    async with serve(build_server(1)) as url:
        missing = "sha256:" + "1" * 64
        registry = ToolRegistry([create_tool_server(config(url, {"vanished": missing}))])
        await registry.start_all()
        try:
            health = registry.health()["pinned"]
            assert health.status == "available"
            assert [m.as_dict() for m in health.incompatible_tools] == [
                {"tool": "vanished", "expected": missing, "actual": None}
            ]
            assert mismatch_metric("vanished") == 1.0
            refused = await registry.call("vanished", {})
            assert refused.structured is not None
            assert refused.structured["error"] == "unavailable"
        finally:
            await registry.aclose()
        assert mismatch_metric("vanished") == 0.0  # closed: no longer counted


async def test_a_new_definition_with_incompatible_pins_is_rolled_back_to_the_compatible_one() -> (
    None
):
    async with serve(build_server(1)) as v1, serve(build_server(2)) as v2:
        pinned = await current_hash(v1, "lookup")
        registry = ToolRegistry([create_tool_server(config(v1, {"lookup": pinned}))])
        await registry.start_all()
        try:
            result = await registry.reload("pinned", config(v2, None))

            assert result.outcome == "rolled_back"
            assert result.reason is not None
            assert "changed its input schema" in result.reason
            # the compatible connection keeps serving the pinned tool
            assert (await registry.call("lookup", {"query": "q"})).content == "v1:q"
            served: Any = registry.servers()["pinned"]
            assert served.config.url == v1
            assert served.config.pinned_tools == {"lookup": pinned}  # the agent's pins kept
            assert registry.health()["pinned"].incompatible_tools == ()
        finally:
            await registry.aclose()
