"""A runtime with authentication on, over real HTTP: two bootstrap admin tokens of
different tenants (``default`` and ``other``), API keys in the state backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from agentfleet_crds.contract import ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.servers import running_server

ADMIN_A = "admin-token-of-tenant-a"
ADMIN_B = "admin-token-of-tenant-b"
TENANT_B = "other"


@dataclass
class SecureRuntime:
    url: str
    client: httpx2.AsyncClient
    app: Any
    fake: RunningFakeProvider | None = None
    admin_a: str = ADMIN_A
    admin_b: str = ADMIN_B
    tenant_b: str = TENANT_B

    def as_(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def create_key(self, admin: str, *scopes: str, **extra: object) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/api-keys",
            json={"name": "k", "scopes": list(scopes), **extra},
            headers=self.as_(admin),
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@contextlib.asynccontextmanager
async def secure_runtime(
    fake: RunningFakeProvider, demo_url: str, **overrides: Any
) -> AsyncIterator[SecureRuntime]:
    auth = overrides.pop(
        "auth",
        AuthSettings(
            mode="api-keys",
            tokens=[
                StaticToken(token=ADMIN_A, subject="admin-a"),  # type: ignore[arg-type]
                StaticToken(token=ADMIN_B, subject="admin-b", tenant=TENANT_B),  # type: ignore[arg-type]
            ],
        ),
    )
    runtime_config: RuntimeConfig | None = overrides.pop("runtime_config", None)
    settings = RuntimeSettings(
        fake_provider_url=fake.url, log_format="console", auth=auth, **overrides
    )
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_url)
    app = create_app(settings, mcp_servers={"demo": demo}, runtime_config=runtime_config)
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        yield SecureRuntime(url=server.url, client=client, app=app, fake=fake)


@pytest.fixture
async def secure(
    fake_provider: RunningFakeProvider, demo_mcp_url: str
) -> AsyncIterator[SecureRuntime]:
    async with secure_runtime(fake_provider, demo_mcp_url) as rt:
        yield rt


SecureFactory = Any


@pytest.fixture
def make_secure(fake_provider: RunningFakeProvider, demo_mcp_url: str) -> SecureFactory:
    """``async with make_secure(rate_limits=..., tenancy=..., runtime_config=...) as rt``."""

    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[SecureRuntime]:
        return secure_runtime(fake_provider, demo_mcp_url, **overrides)

    return make


@pytest.fixture
def agent_body() -> dict[str, Any]:
    return AGENT


AGENT = {
    "name": "calc",
    "spec": {
        "systemPrompt": "You are a calculator.",
        "model": {"provider": "fake", "name": "fake-model"},
        "tools": [{"mcpServerRef": {"name": "demo"}}],
    },
}
