"""The operator at scale (issue #3's benchmark): 1,000 Agents applied at once.

Topology, all on this machine, speaking real HTTP:

    bench (applies Agents) ──HTTP──► emulated Kubernetes API (kmock, this process)
                                            ▲      └─ emulated Deployment controller:
                                            │         a new/changed Deployment reports
                                            │         every replica ready
    agentfleet-operator (its own process) ──┘  kopf watches + the operator's work queue

Measures the time from the first Agent applied until every Agent's Deployment exists, and
until every Agent reports ``Ready=True`` (Deployment rolled out, status written), and the
operator process's peak resident memory (``VmHWM``). Targets: < 60 s and < 250 MiB.

Run: ``uv run python bench/operator_scale.py [--agents 1000] [--workers 8] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import kmock

from agentfleet_operator.testing.emulator import (
    KubernetesAPIEmulator,
    declare_agentfleet_resources,
)

NAMESPACE = "bench"
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
AGENTS = kmock.resource("agentfleet.dev", "v1alpha1", "agents")
TARGET_SECONDS = 60.0
TARGET_MIB = 250.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": f"agent-{index:04d}", "namespace": NAMESPACE},
        "spec": {
            "model": {"provider": "openai", "name": "gpt-4.1-mini"},
            "systemPrompt": f"You are agent number {index}.",
            "tools": [{"mcpServerRef": {"name": "search"}}],
            "resiliencePolicyRef": {"name": "standard"},
        },
    }


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of a process (``VmHWM``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counts(emulator: KubernetesAPIEmulator, total: int) -> tuple[int, int]:
    """(Deployments that exist, Agents that are Ready) — read from the emulator's state."""
    deployments = ready = 0
    for i in range(total):
        name = f"agent-{i:04d}"
        if emulator.peek(DEPLOYMENTS, NAMESPACE, name) is not None:
            deployments += 1
        found = emulator.peek(AGENTS, NAMESPACE, name)
        conditions = ((found or {}).get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready += 1
    return deployments, ready


async def apply_all(url: str, total: int, concurrency: int = 32) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    path = f"{url}/apis/agentfleet.dev/v1alpha1/namespaces/{NAMESPACE}/agents"
    async with aiohttp.ClientSession() as http:

        async def create(index: int) -> None:
            async with semaphore, http.post(path, json=agent(index)) as response:
                if response.status >= 300:
                    raise RuntimeError(f"create agent {index}: {response.status}")

        await asyncio.gather(*(create(i) for i in range(total)))


async def seed(url: str) -> None:
    base = f"{url}/apis/agentfleet.dev/v1alpha1/namespaces/{NAMESPACE}"
    objects = {
        "mcpservers": {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "search"},
            "spec": {"url": "https://search.example.com/mcp"},
        },
        "resiliencepolicies": {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "ResiliencePolicy",
            "metadata": {"name": "standard"},
            "spec": {},
        },
    }
    async with aiohttp.ClientSession() as http:
        for plural, body in objects.items():
            async with http.post(f"{base}/{plural}", json=body) as response:
                response.raise_for_status()


async def run(total: int, workers: int, give_up_after: float) -> dict[str, Any]:
    async with KubernetesAPIEmulator(ready_deployments=True) as emulator, kmock.Server(emulator):
        declare_agentfleet_resources(emulator)
        url = str(emulator.url).rstrip("/")
        await seed(url)
        health = free_port()
        env = {
            **os.environ,
            "AGENTFLEET_OPERATOR_KUBE_API_SERVER": url,
            "AGENTFLEET_OPERATOR_WORKERS": str(workers),
            "AGENTFLEET_OPERATOR_LEADER_ELECTION": "false",
            "AGENTFLEET_OPERATOR_MCP_PROBE_TIMEOUT_SECONDS": "0",
            "AGENTFLEET_OPERATOR_HEALTH_ADDRESS": f"127.0.0.1:{health}",
        }
        operator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentfleet_operator.main",
            "--log-format",
            "plain",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_ready(f"http://127.0.0.1:{health}/readyz")
            baseline = peak_rss_mib(operator.pid)
            started = time.monotonic()
            await apply_all(url, total)
            applied = time.monotonic() - started
            all_deployments = all_ready = None
            while time.monotonic() - started < give_up_after:
                deployments, ready = counts(emulator, total)
                now = time.monotonic() - started
                if all_deployments is None and deployments == total:
                    all_deployments = now
                if ready == total:
                    all_ready = now
                    break
                await asyncio.sleep(0.25)
            peak = peak_rss_mib(operator.pid)
            operator_cpu = cpu_seconds(operator.pid)
            emulator_cpu = cpu_seconds(os.getpid())
            metrics = await fetch(f"http://127.0.0.1:{health}/metrics")
        finally:
            operator.terminate()
            await operator.wait()
        requests = len(emulator.recorded_requests)
    return {
        "agents": total,
        "workers": workers,
        "applied_seconds": round(applied, 2),
        "all_deployments_seconds": None if all_deployments is None else round(all_deployments, 2),
        "all_ready_seconds": None if all_ready is None else round(all_ready, 2),
        "operator_peak_rss_mib": round(peak, 1),
        "operator_idle_rss_mib": round(baseline, 1),
        "api_requests": requests,
        "operator_cpu_seconds": round(operator_cpu, 1),
        "emulator_and_bench_cpu_seconds": round(emulator_cpu, 1),
        "reconciles": reconcile_count(metrics),
    }


async def wait_ready(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the operator did not become ready")


async def fetch(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return await response.text()


def reconcile_count(metrics: str) -> int:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("agentfleet_operator_reconciles_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = asyncio.run(run(args.agents, args.workers, args.timeout))
    if args.json:
        print(json.dumps(result))
        return
    ready = result["all_ready_seconds"]
    print(f"agents applied:            {result['agents']} in {result['applied_seconds']} s")
    print(f"every Deployment exists:   {result['all_deployments_seconds']} s")
    print(f"every Agent Ready:         {ready} s (target < {TARGET_SECONDS:g} s)")
    peak = result["operator_peak_rss_mib"]
    print(f"operator peak memory:      {peak} MiB (target < {TARGET_MIB:g} MiB)")
    print(f"operator idle memory:      {result['operator_idle_rss_mib']} MiB")
    print(f"API requests served:       {result['api_requests']}")
    print(f"CPU: operator {result['operator_cpu_seconds']} s, emulator + bench ", end="")
    print(f"{result['emulator_and_bench_cpu_seconds']} s ({os.cpu_count()} cores)")
    print(f"reconciles:                {result['reconciles']} ({result['workers']} workers)")
    ok = ready is not None and ready < TARGET_SECONDS and peak < TARGET_MIB
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
