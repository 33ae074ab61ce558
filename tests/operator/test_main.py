"""``agentfleet-operator`` as a process: flags, environment, liveness endpoint, and a real
reconcile against the emulated API."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import aiohttp

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import AGENTS, DEPLOYMENTS
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator
from agentfleet_operator.testing.waiting import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_console_script_runs_the_operator(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = {
        **os.environ,
        "AGENTFLEET_OPERATOR_KUBE_API_SERVER": str(emulator.url),
        "AGENTFLEET_OPERATOR_RUNTIME_IMAGE": "registry.local/runtime:test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentfleet_operator.main",
        "--liveness",
        liveness,
        "-n",
        "team-a",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def alive() -> dict[str, object] | None:
            try:
                async with aiohttp.ClientSession() as http, http.get(liveness) as response:
                    return dict(await response.json()) if response.status == 200 else None
            except aiohttp.ClientError:
                return None

        probes = await eventually(alive, within=15, what="the liveness endpoint")
        assert probes.get("api-client") is True

        await kube.create(
            AGENTS,
            "team-a",
            {
                "apiVersion": "agentfleet.dev/v1alpha1",
                "kind": "Agent",
                "metadata": {"name": "cli"},
                "spec": {"model": {"provider": "fake", "name": "m"}},
            },
        )
        deployment = await eventually(
            lambda: kube.get_or_none(DEPLOYMENTS, "team-a", "cli"), what="the Deployment"
        )
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "registry.local/runtime:test"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, stderr.decode()[-2000:]
