"""A runtime served in-process on a chosen state backend (memory or a real Redis), with
static-token auth and short heartbeats, plus a small WebSocket client helper."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.redis import RedisServer, running_redis
from agentfleet_runtime.testing.servers import running_server

TOKEN = "test-token"


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@dataclass
class RT:
    url: str
    app: FastAPI
    client: httpx2.AsyncClient
    fake: RunningFakeProvider

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/api/v1/ws"

    async def session(self) -> str:
        response = await self.client.post("/api/v1/sessions", json={"agent": "calc"})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    def connect(self, token: str | None = TOKEN, path: str = "/api/v1/ws") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.url.replace("http", "ws", 1) + path
        return connect(url, additional_headers=headers, ping_interval=None)


def settings_for(
    backend: str, redis: RedisServer, fake: RunningFakeProvider, **realtime: Any
) -> RuntimeSettings:
    return RuntimeSettings(
        fake_provider_url=fake.url,
        log_format="console",
        state=StateSettings(
            backend=backend,  # type: ignore[arg-type]
            redis_url=redis.url,
            tenant=f"t{uuid.uuid4().hex[:10]}",
            lease_seconds=1.0,
            sweep_interval_seconds=0.2,
        ),
        realtime=RealtimeSettings(
            **{
                "heartbeat_interval_seconds": 0.3,
                "heartbeat_timeout_seconds": 0.5,
                "auth_timeout_seconds": 0.5,
                **realtime,
            }
        ),
        auth=AuthSettings(mode="static", tokens=[StaticToken(token=TOKEN, subject="tester")]),  # type: ignore[arg-type]
    )


@pytest.fixture(params=["memory", "redis"])
async def rt(
    request: pytest.FixtureRequest,
    shared_redis: RedisServer,
    fake_provider: RunningFakeProvider,
    demo_mcp_url: str,
) -> AsyncIterator[RT]:
    settings = settings_for(request.param, shared_redis, fake_provider)
    async with running_rt(settings, fake_provider, demo_mcp_url) as served:
        yield served


@contextlib.asynccontextmanager
async def running_rt(
    settings: RuntimeSettings, fake_provider: RunningFakeProvider, demo_mcp_url: str
) -> AsyncIterator[RT]:
    """A runtime with ``settings`` over real HTTP, with the ``calc`` agent."""
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_mcp_url)
    app = create_app(settings, mcp_servers={"demo": demo})
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client,
    ):
        body = {
            "name": "calc",
            "spec": {
                "systemPrompt": "You are a calculator.",
                "model": {"provider": "fake", "name": "fake-model"},
                "tools": [{"mcpServerRef": {"name": "demo"}}],
            },
        }
        response = await client.post("/api/v1/agents", json=body)
        assert response.status_code == 201, response.text
        yield RT(url=server.url, app=app, client=client, fake=fake_provider)


async def recv(ws: ClientConnection, wait: float = 10, *, pings: bool = False) -> dict[str, Any]:
    """The next frame. Heartbeat pings (every 0.3 s here) are answered and skipped unless
    ``pings``: on a loaded machine one can arrive between any two frames a test expects."""
    import asyncio

    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
        if pings or frame.get("type") != "ping":
            return frame
        await ws.send(json.dumps({"type": "pong"}))


async def recv_until(
    ws: ClientConnection, predicate: Any, wait: float = 10
) -> list[dict[str, Any]]:
    """Frames (pings answered and dropped) until one matches ``predicate`` (included)."""
    frames: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws, wait)
        if frame["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        frames.append(frame)
        if predicate(frame):
            return frames
