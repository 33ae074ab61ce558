"""A runtime (memory backend, static tokens, short heartbeats) behind a TCP proxy that
the tests cut or partition."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider
from agentfleet_runtime.testing.proxy import TcpProxy
from agentfleet_runtime.testing.servers import running_server

TOKEN = "sdk-token"


@dataclass
class Served:
    app: FastAPI
    url: str  # direct
    proxy: TcpProxy
    fake: RunningFakeProvider


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with running_fake_provider() as fake:
        settings = RuntimeSettings(
            fake_provider_url=fake.url,
            log_format="console",
            state=StateSettings(tenant=f"t{uuid.uuid4().hex[:8]}", sweep_interval_seconds=0.2),
            realtime=RealtimeSettings(
                heartbeat_interval_seconds=0.3, heartbeat_timeout_seconds=0.5
            ),
            auth=AuthSettings(mode="static", tokens=[StaticToken(token=TOKEN, subject="sdk")]),  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with running_server(app) as server, TcpProxy("127.0.0.1", server.port) as proxy:
            yield Served(app=app, url=server.url, proxy=proxy, fake=fake)
