"""Fixtures for the operator tests: an emulated Kubernetes API over real HTTP and an API
client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
