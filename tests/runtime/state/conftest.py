"""The state backends under test: every contract test runs on ``memory`` and on a real
``redis-server`` (one per module; each test gets its own tenant namespace)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from agentfleet_runtime.state.factory import StateBackend, open_state
from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server


def state_settings(backend: str, redis: RedisServer | None, **overrides: object) -> StateSettings:
    return StateSettings(
        backend=backend,  # type: ignore[arg-type]
        redis_url=redis.url if redis else "redis://unused",
        tenant=f"t{uuid.uuid4().hex[:12]}",
        socket_timeout_seconds=1.0,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, shared_redis: RedisServer
) -> AsyncIterator[StateBackend]:
    settings = state_settings(request.param, shared_redis, events_max_len=50)
    async with open_state(settings) as state:
        yield state
