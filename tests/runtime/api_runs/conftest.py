"""A runtime with authentication on (two tenants' admins, a reader), over real HTTP, with
the fake model provider and the demo MCP server — for the runs, MCP servers and audit
APIs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.servers import running_server

ADMIN = "admin-token-of-the-default-tenant"
READER = "reader-token-of-the-default-tenant"
OTHER = "admin-token-of-tenant-other"

AUTH = AuthSettings(
    mode="static",
    tokens=[
        StaticToken(token=ADMIN, subject="alice"),  # type: ignore[arg-type]
        StaticToken(token=READER, subject="rita", scopes=["read"]),  # type: ignore[arg-type]
        StaticToken(token=OTHER, subject="bob", tenant="other"),  # type: ignore[arg-type]
    ],
)


@dataclass
class Api:
    app: FastAPI
    client: httpx2.AsyncClient
    fake: RunningFakeProvider

    @staticmethod
    def as_(token: str | None = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def create_agent(
        self, name: str = "calc", servers: tuple[str, ...] = ("demo",), token: str = ADMIN
    ) -> httpx2.Response:
        body = {
            "name": name,
            "spec": {
                "systemPrompt": "You are a calculator.",
                "model": {"provider": "fake", "name": "fake-model"},
                "tools": [{"mcpServerRef": {"name": s}} for s in servers],
            },
        }
        return await self.client.post("/api/v1/agents", json=body, headers=self.as_(token))

    async def session(self, agent: str = "calc", token: str = ADMIN) -> str:
        response = await self.client.post(
            "/api/v1/sessions", json={"agent": agent}, headers=self.as_(token)
        )
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    async def say(self, session: str, content: str, token: str = ADMIN) -> httpx2.Response:
        return await self.client.post(
            f"/api/v1/sessions/{session}/messages",
            json={"content": content},
            headers=self.as_(token),
        )

    async def get(self, path: str, token: str | None = ADMIN, **params: Any) -> httpx2.Response:
        return await self.client.get(path, params=params, headers=self.as_(token))


@contextlib.asynccontextmanager
async def api_runtime(
    fake: RunningFakeProvider,
    servers: dict[str, ResolvedMCPServer],
    **overrides: Any,
) -> AsyncIterator[Api]:
    settings = RuntimeSettings(
        fake_provider_url=fake.url,
        log_format="console",
        auth=overrides.pop("auth", AUTH),
        **overrides,
    )
    app = create_app(settings, mcp_servers=servers)
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        yield Api(app=app, client=client, fake=fake)


def demo(url: str) -> ResolvedMCPServer:
    return ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=url)


@pytest.fixture
async def api(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> AsyncIterator[Api]:
    async with api_runtime(fake_provider, {"demo": demo(demo_mcp_url)}) as rt:
        yield rt


MakeApi = Callable[..., contextlib.AbstractAsyncContextManager[Api]]


@pytest.fixture
def make_api(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> MakeApi:
    """``async with make_api(state=..., cluster_mode=True, servers={...}) as rt``."""

    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Api]:
        servers = overrides.pop("servers", {"demo": demo(demo_mcp_url)})
        return api_runtime(fake_provider, servers, **overrides)

    return make
