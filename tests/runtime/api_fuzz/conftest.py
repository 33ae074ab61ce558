"""The whole runtime (``agentfleet dev``'s app: embedded fake model provider and demo MCP
server, the config agent ``demo``) served over real HTTP from a thread of its own, so that
synchronous Hypothesis tests can call it while its event loop keeps running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from agentfleet_runtime.api.ratelimit import ApiRateLimitSettings
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.dev import build_dev_app
from agentfleet_runtime.resilience.options import ResilienceSettings
from agentfleet_runtime.testing.servers import free_port, running_server

#: The bootstrap admin token: of the API (tenant ``default``, every scope) and of the
#: resilience admin API.
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def fuzz_settings(port: int = 8000) -> RuntimeSettings:
    return RuntimeSettings(
        port=port,
        log_format="console",
        log_level="ERROR",
        auth=AuthSettings(
            mode="api-keys", tokens=[StaticToken(token=SecretStr(ADMIN_TOKEN), subject="fuzzer")]
        ),
        rate_limits=ApiRateLimitSettings(enabled=False),
        resilience=ResilienceSettings(admin_token=SecretStr(ADMIN_TOKEN)),
    )


def fuzz_app(port: int = 8000) -> tuple[FastAPI, asyncio.Event]:
    serving = asyncio.Event()
    app, _ = build_dev_app(fuzz_settings(port), [], serving=serving)
    return app, serving


@dataclass
class ServedRuntime:
    url: str
    app: FastAPI

    def new_session(self) -> str | None:
        """A fresh session with the ``demo`` agent (``None`` if the fuzzing itself made
        that impossible, e.g. by setting the tenant's session quota to 0)."""
        response = httpx2.post(
            f"{self.url}/api/v1/sessions", json={"agent": "demo"}, headers=AUTH, timeout=30
        )
        return str(response.json()["id"]) if response.status_code == 201 else None


@pytest.fixture(scope="module")
def served_runtime() -> Iterator[ServedRuntime]:
    """The runtime on a free port, its event loop in a background thread, until the
    module's tests are done."""
    port = free_port()
    app, serving = fuzz_app(port)
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with running_server(app, port=port):
                serving.set()
                await app.state.loading  # the config agent is loaded: ready
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(timeout=60)
    if failure:
        raise failure[0]
    try:
        yield ServedRuntime(url=f"http://127.0.0.1:{port}", app=app)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
