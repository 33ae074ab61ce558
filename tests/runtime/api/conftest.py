"""A runtime over real HTTP with authentication on (two tenants' admins), on the memory
state backend or on a real ``redis-server``; the fake model provider and the demo MCP
server come from ``tests/runtime/conftest.py``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from agentfleet_crds.contract import ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)
from agentfleet_runtime.testing.servers import running_server

ADMIN_A = "admin-token-of-tenant-a"
ADMIN_A2 = "second-admin-token-of-tenant-a"
ADMIN_B = "admin-token-of-tenant-b"
TENANT_B = "other"

AGENT_SPEC: dict[str, Any] = {
    "systemPrompt": "You are a calculator.",
    "model": {"provider": "fake", "name": "fake-model"},
    "tools": [{"mcpServerRef": {"name": "demo"}}],
}


@dataclass
class Api:
    url: str
    client: httpx2.AsyncClient
    fake: RunningFakeProvider
    app: Any

    @staticmethod
    def as_(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, token: str = ADMIN_A, **kwargs: Any
    ) -> httpx2.Response:
        headers = {**self.as_(token), **kwargs.pop("headers", {})}
        return await self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)

    async def create_agent(self, name: str = "calc", token: str = ADMIN_A) -> None:
        response = await self.call(
            "POST", "/agents", token, json={"name": name, "spec": AGENT_SPEC}
        )
        assert response.status_code == 201, response.text

    async def create_session(
        self, agent: str = "calc", token: str = ADMIN_A, **body: Any
    ) -> dict[str, Any]:
        response = await self.call("POST", "/sessions", token, json={"agent": agent, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server


@contextlib.asynccontextmanager
async def running_api(
    fake: RunningFakeProvider,
    demo_url: str,
    state: StateSettings,
    runtime_config: RuntimeConfig | None = None,
    **overrides: Any,
) -> AsyncIterator[Api]:
    """``runtime_config``: agents loaded at start-up (shared, read-only)."""
    settings = RuntimeSettings(
        fake_provider_url=fake.url,
        log_format="console",
        state=state,
        auth=AuthSettings(
            mode="api-keys",
            tokens=[
                StaticToken(token=ADMIN_A, subject="admin-a"),  # type: ignore[arg-type]
                StaticToken(token=ADMIN_A2, subject="admin-a2"),  # type: ignore[arg-type]
                StaticToken(token=ADMIN_B, subject="admin-b", tenant=TENANT_B),  # type: ignore[arg-type]
            ],
        ),
        **overrides,
    )
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_url)
    app = create_app(settings, mcp_servers={"demo": demo}, runtime_config=runtime_config)
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        yield Api(url=server.url, client=client, fake=fake, app=app)


def state_settings(backend: str, redis: RedisServer | None) -> StateSettings:
    return StateSettings(
        backend=backend,  # type: ignore[arg-type]
        redis_url=redis.url if redis else "redis://unused",
        tenant=f"t{uuid.uuid4().hex[:12]}",
        sweep_interval_seconds=0.2,
    )


@pytest.fixture
async def api(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> AsyncIterator[Api]:
    """Memory backend."""
    async with running_api(fake_provider, demo_mcp_url, state_settings("memory", None)) as rt:
        yield rt


@pytest.fixture(params=["memory", "redis"])
async def any_api(
    request: pytest.FixtureRequest,
    fake_provider: RunningFakeProvider,
    demo_mcp_url: str,
    shared_redis: RedisServer,
) -> AsyncIterator[Api]:
    """The same tests on the memory backend and on a real redis-server."""
    state = state_settings(request.param, shared_redis)
    async with running_api(fake_provider, demo_mcp_url, state) as rt:
        yield rt
