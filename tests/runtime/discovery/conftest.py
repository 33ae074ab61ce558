"""A runtime in cluster mode whose agents come from a runtime config file that the tests
rewrite, as the kubelet rewrites a ConfigMap volume."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastapi import FastAPI

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.loader import load_runtime_config
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.servers import running_demo_mcp, running_server

#: The demo MCP server over streamable HTTP (yields its URL).
demo_mcp = running_demo_mcp


def agent_config(name: str, mcp_url: str, *, prompt: str = "You are a calculator.") -> AgentConfig:
    spec = AgentSpec.model_validate(
        {
            "systemPrompt": prompt,
            "model": {"provider": "fake", "name": "fake-model"},
            "tools": [{"mcpServerRef": {"name": "demo"}}],
        }
    )
    server = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=mcp_url)
    return AgentConfig(name=name, spec=spec, mcp_servers=[server])


def write_config(path: Path, *agents: AgentConfig) -> None:
    data = RuntimeConfig(agents=list(agents)).model_dump(mode="json", by_alias=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data), encoding="utf-8")
    tmp.replace(path)  # atomic, like the kubelet's symlink swap


@dataclass
class ClusterRuntime:
    url: str
    client: httpx2.AsyncClient
    fake: RunningFakeProvider
    config_path: Path
    app: FastAPI

    async def reload(self) -> dict[str, Any]:
        response = await self.client.post("/api/v1/admin/config/reload")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def turn(self, agent: str, expression: str = "6*7") -> dict[str, Any]:
        session = await self.client.post("/api/v1/sessions", json={"agent": agent})
        assert session.status_code == 201, session.text
        self.fake.script.push_tool_call("calculate", {"expression": expression})
        response = await self.client.post(
            f"/api/v1/sessions/{session.json()['id']}/messages", json={"content": expression}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


StartRuntime = Callable[..., contextlib.AbstractAsyncContextManager[ClusterRuntime]]


@pytest.fixture
def start_runtime(fake_provider: RunningFakeProvider, tmp_path: Path) -> StartRuntime:
    @contextlib.asynccontextmanager
    async def start(*agents: AgentConfig, **settings: Any) -> AsyncIterator[ClusterRuntime]:
        path = tmp_path / "runtime.yaml"
        write_config(path, *agents)
        runtime_settings = RuntimeSettings.model_validate(
            {
                "fake_provider_url": fake_provider.url,
                "log_format": "console",
                "cluster_mode": True,
                "config_file": path,
                "discovery": {"config_poll_seconds": 3600, "heartbeat_seconds": 0.2},
                **settings,
            }
        )
        app = create_app(runtime_settings, runtime_config=load_runtime_config(path))
        async with (
            running_server(app) as server,
            httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            for _ in range(200):  # agents load once the server listens
                if (await client.get("/healthz/ready")).status_code == 200:
                    break
                await _sleep()
            yield ClusterRuntime(server.url, client, fake_provider, path, app)

    return start


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.05)
