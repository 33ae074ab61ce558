"""The service dependency map: declared from the agents' config, observed live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentfleet_crds.manifests import load_manifest_files
from agentfleet_operator.render.config import configs_from_resources
from agentfleet_runtime.observability.dependency_map import (
    DependencyMapBuilder,
    redact_url,
    render_markdown,
)
from agentfleet_runtime.state.settings import StateSettings

from .conftest import ClusterRuntime, StartRuntime, agent_config, demo_mcp

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _dep(deps: dict[str, Any], dep_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in deps["dependencies"] if d["id"] == dep_id)
    return found


async def _map(runtime: ClusterRuntime) -> dict[str, Any]:
    response = await runtime.client.get("/api/v1/admin/dependencies")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_the_live_map_shows_health_breakers_latency_and_dependents(
    start_runtime: StartRuntime,
) -> None:
    async with (
        demo_mcp() as mcp,
        start_runtime(agent_config("calc", mcp), agent_config("other", mcp)) as runtime,
    ):
        await runtime.turn("calc")

        deps = await _map(runtime)

        model = _dep(deps, "llm:fake/fake-model")
        assert model["kind"] == "model"
        assert model["dependents"] == ["calc", "other"]
        assert model["health"] == "healthy"
        assert model["breaker"]["state"] == "closed"
        assert model["recent"]["calls"] == 2  # two model calls in the turn
        assert model["recent"]["error_rate"] == 0
        assert model["recent"]["p50_ms"] > 0
        tools = _dep(deps, "mcp:demo")
        assert tools["health"] == "healthy"
        assert tools["recent"]["calls"] == 1
        assert tools["target"] == redact_url(mcp)
        assert deps["agents"]["calc"] == ["llm:fake/fake-model", "mcp:demo"]
        assert deps["health"] == "healthy"

        # an open breaker: the dependency is down, and so is the map's overall health
        forced = await runtime.client.post("/api/v1/admin/breakers/mcp:demo/force-open")
        assert forced.status_code == 200, forced.text
        deps = await _map(runtime)
        assert _dep(deps, "mcp:demo")["health"] == "down"
        assert "forced-open" in _dep(deps, "mcp:demo")["reason"]
        assert deps["health"] == "down"

        page = await runtime.client.get("/api/v1/admin/dependencies?format=markdown")
        assert page.headers["content-type"].startswith("text/markdown")
        assert "```mermaid\nflowchart LR" in page.text
        assert "| `mcp:demo` | mcp-server |" in page.text


def test_the_declared_map_of_the_examples() -> None:
    configs = configs_from_resources(load_manifest_files(sorted(EXAMPLES.glob("*.yaml"))))
    assert configs
    builder = DependencyMapBuilder.declared(
        configs, StateSettings(backend="redis", redis_url="redis://:secret@redis:6379/0")
    )
    deps = builder.build()

    ids = {d.id: d for d in deps.dependencies}
    assert ids["redis"].target == "redis://redis:6379/0"  # no password
    assert all(d.health == "unknown" for d in deps.dependencies)
    for agent, dep_ids in deps.agents.items():
        assert "redis" in dep_ids
        assert any(i.startswith("llm:") for i in dep_ids), agent
        for dep_id in dep_ids:
            assert agent in ids[dep_id].dependents
    page = render_markdown(deps)
    assert page.count("classDef unknown") == 1


async def test_the_cli_prints_the_live_map(start_runtime: StartRuntime, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentfleet_runtime.cli import app

    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        out = tmp_path / "deps.md"
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["dependency-map", "--url", runtime.url, "-o", str(out)]
        )
        assert result.exit_code == 0, result.output
        page = out.read_text()
        assert page.startswith("# Dependency map")
        assert "| `mcp:demo` | mcp-server |" in page

        unreachable = await asyncio.to_thread(
            CliRunner().invoke, app, ["dependency-map", "--url", "http://127.0.0.1:9"]
        )
        assert unreachable.exit_code == 1
        assert "cannot reach" in unreachable.output
