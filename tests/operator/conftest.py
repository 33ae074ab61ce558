"""Fixtures for the operator tests: an emulated Kubernetes API over real HTTP and an API
client pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kmock
import kopf
import pytest

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.testing.emulator import (
    KubernetesAPIEmulator,
    declare_agentfleet_resources,
)


@pytest.fixture
async def emulator() -> AsyncIterator[KubernetesAPIEmulator]:
    async with KubernetesAPIEmulator() as api, kmock.Server(api):
        declare_agentfleet_resources(api)
        yield api


@pytest.fixture
async def kube(emulator: KubernetesAPIEmulator) -> AsyncIterator[KubeClient]:
    client = KubeClient(request_timeout=5)
    await client.connect(kopf.ConnectionInfo(server=str(emulator.url)))
    yield client
    await client.close()


async def eventually[T](
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 5.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; its last value on success."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
