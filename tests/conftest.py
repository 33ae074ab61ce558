"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentfleet_runtime.testing.redis import (
    INSTALL_HINT,
    RedisServer,
    redis_server_path,
    running_redis,
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real, empty ``redis-server`` for one test (stop/restart it to inject faults)."""
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as server:
        yield server
