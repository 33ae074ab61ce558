"""``agentfleet-operator`` as a process: flags, environment, health and metrics endpoints,
leader election, and a real reconcile against the emulated API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import aiohttp

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import AGENTS, DEPLOYMENTS, LEASES
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator
from agentfleet_operator.testing.waiting import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_console_script_runs_the_operator(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    health = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "AGENTFLEET_OPERATOR_KUBE_API_SERVER": str(emulator.url),
        "AGENTFLEET_OPERATOR_RUNTIME_IMAGE": "registry.local/runtime:test",
        "AGENTFLEET_OPERATOR_POD_NAME": "operator-0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentfleet_operator.main",
        "--health-address",
        health.removeprefix("http://"),
        "-n",
        "team-a",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def ready() -> dict[str, object] | None:
            try:
                async with aiohttp.ClientSession() as http, http.get(f"{health}/readyz") as reply:
                    body = dict(await reply.json())
                    return body if reply.status == 200 and body.get("role") == "leader" else None
            except aiohttp.ClientError:
                return None

        state = await eventually(ready, within=15, what="the readiness endpoint")
        assert state["ready"] is True
        lease = await kube.get(LEASES, "team-a", "agentfleet-operator")
        assert lease["spec"]["holderIdentity"] == "operator-0"

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

        async with aiohttp.ClientSession() as http, http.get(f"{health}/healthz") as reply:
            assert reply.status == 200

        async def reconciled() -> str | None:
            async with aiohttp.ClientSession() as http, http.get(f"{health}/metrics") as reply:
                text = await reply.text()
            success = 'agentfleet_operator_reconciles_total{kind="Agent",result="success"}'
            return text if success in text else None

        metrics = await eventually(reconciled, what="a reconcile in the metrics")
        assert "agentfleet_operator_leader 1.0" in metrics
        assert "agentfleet_operator_reconcile_duration_seconds_bucket" in metrics
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, stderr.decode()[-2000:]
    lease = await kube.get(LEASES, "team-a", "agentfleet-operator")
    assert "holderIdentity" not in lease["spec"]  # released for a follower to take at once
    first = stderr.decode().splitlines()[0]
    assert json.loads(first)["level"] in {"info", "warning"}  # structured logs
