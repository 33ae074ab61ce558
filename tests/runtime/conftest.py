"""Fixtures that run agentfleet's real parts over real HTTP: the fake model provider, the
demo MCP server (streamable HTTP) and the runtime itself, each on its own port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider
from agentfleet_runtime.testing.servers import running_demo_mcp, running_server


@pytest.fixture(scope="session", autouse=True)
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runtimes built in tests keep their filesystem artifacts in a temporary directory,
    not in the working directory's ``.agentfleet/artifacts`` (the development default)."""
    path = tmp_path_factory.mktemp("artifacts")
    previous = os.environ.get("AGENTFLEET_ARTIFACTS__DIR")
    os.environ["AGENTFLEET_ARTIFACTS__DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("AGENTFLEET_ARTIFACTS__DIR", None)
    else:
        os.environ["AGENTFLEET_ARTIFACTS__DIR"] = previous


@pytest.fixture
async def fake_provider() -> AsyncIterator[RunningFakeProvider]:
    async with running_fake_provider() as fake:
        yield fake


@pytest.fixture
async def demo_mcp_url() -> AsyncIterator[str]:
    async with running_demo_mcp() as url:
        yield url


@dataclass
class Runtime:
    url: str
    client: httpx2.AsyncClient
    fake: RunningFakeProvider

    async def create_agent(self, name: str = "calc", **spec: object) -> dict[str, object]:
        body = {
            "name": name,
            "spec": {
                "systemPrompt": "You are a calculator.",
                "model": {"provider": "fake", "name": "fake-model"},
                "tools": [{"mcpServerRef": {"name": "demo"}}],
                **spec,
            },
        }
        response = await self.client.post("/api/v1/agents", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, object] = response.json()
        return result

    async def create_session(self, agent: str = "calc") -> str:
        response = await self.client.post("/api/v1/sessions", json={"agent": agent})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id


@pytest.fixture
async def runtime(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> AsyncIterator[Runtime]:
    settings = RuntimeSettings(fake_provider_url=fake_provider.url, log_format="console")
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_mcp_url)
    app = create_app(settings, mcp_servers={"demo": demo})
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        yield Runtime(url=server.url, client=client, fake=fake_provider)
