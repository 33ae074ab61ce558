"""Fixtures for the operator tests: an emulated Kubernetes API over real HTTP and an API
client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[KubernetesAPIEmulator]:
    marker = request.node.get_closest_marker("emulator")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    async with KubernetesAPIEmulator(**options) as api, kmock.Server(api):
        declare_agentfleet_resources(api)
        yield api


@pytest.fixture
async def kube(emulator: KubernetesAPIEmulator) -> AsyncIterator[KubeClient]:
    client = KubeClient(request_timeout=5, user_agent="agentfleet-tests")
    await client.connect(kopf.ConnectionInfo(server=str(emulator.url)))
    yield client
    await client.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator(**options): options of the KubernetesAPIEmulator fixture"
    )
