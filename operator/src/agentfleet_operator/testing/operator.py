"""Running the real kopf operator in-process against an emulated API (tests, benchmark)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kopf

from agentfleet_operator.context import CONTEXT_KEY, SETTINGS_KEY, OperatorContext
from agentfleet_operator.handlers import create_registry
from agentfleet_operator.kube import KubeClient
from agentfleet_operator.settings import OperatorSettings
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator


@contextlib.asynccontextmanager
async def running_operator(
    emulator: KubernetesAPIEmulator, kube: KubeClient | None = None, **overrides: Any
) -> AsyncIterator[OperatorContext]:
    """kopf, as ``agentfleet-operator`` runs it, pointed at the emulator. Started and stopped
    in the test's own task: on exit kopf waits for (then cancels) every task created after it
    started, so the test's client is closed first (its keep-alive connections are served by
    such tasks)."""
    options: dict[str, Any] = {
        "kube_api_server": str(emulator.url),
        "dependency_retry_seconds": 0.3,
        "apply_retry_seconds": 0.3,
        "mcp_probe_timeout_seconds": 0,
        **overrides,
    }
    settings = OperatorSettings(**options)
    stop, ready = asyncio.Event(), asyncio.Event()
    memo = kopf.Memo({SETTINGS_KEY: settings})
    task = asyncio.create_task(
        kopf.operator(
            registry=create_registry(),
            standalone=True,
            clusterwide=True,
            stop_flag=stop,
            ready_flag=ready,
            memo=memo,
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), 5)
        context = memo[CONTEXT_KEY]
        assert isinstance(context, OperatorContext)
        yield context
    finally:
        if kube is not None:
            await kube.close()
        stop.set()
        await asyncio.wait_for(task, 10)
