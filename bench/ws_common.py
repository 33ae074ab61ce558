"""Shared parts of the WebSocket benchmarks: runtime processes, readiness, RSS, limits."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import yaml

from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, ModelProviderName, ModelSpec
from agentfleet_runtime.testing.servers import free_port

CLI = str(Path(sys.executable).parent / "agentfleet")
TOKEN = "bench-token"
HOST = "127.0.0.1"


def raise_nofile() -> int:
    """Raise the open-files limit to the hard limit (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def runtime_config(directory: Path) -> Path:
    spec = AgentSpec(
        system_prompt="bench", model=ModelSpec(provider=ModelProviderName.FAKE, name="fake-model")
    )
    path = directory / "runtime.yaml"
    config = RuntimeConfig(agents=[AgentConfig(name="bench", spec=spec)])
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    return path


@contextlib.contextmanager
def runtime(
    name: str, *, fake_url: str, redis_url: str | None = None, **env: str
) -> Iterator[tuple[str, int]]:
    """``agentfleet serve`` in its own process; yields (base URL, pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        environ = {
            **os.environ,
            "AGENTFLEET_REPLICA_ID": name,
            "AGENTFLEET_FAKE_PROVIDER_URL": fake_url,
            "AGENTFLEET_LOG_LEVEL": "WARNING",
            "AGENTFLEET_AUTH__MODE": "static",
            "AGENTFLEET_AUTH__TOKENS": json.dumps([{"token": TOKEN}]),
            **env,
        }
        if redis_url:
            environ |= {
                "AGENTFLEET_STATE__BACKEND": "redis",
                "AGENTFLEET_STATE__REDIS_URL": redis_url,
                "AGENTFLEET_STATE__TENANT": "bench",
            }
        proc = subprocess.Popen(
            [CLI, "serve", "-c", str(runtime_config(Path(tmp))), "-p", str(port), "--host", HOST],
            env=environ,
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"runtime {name} exited with {proc.returncode}")
                with contextlib.suppress(httpx2.TransportError):
                    if httpx2.get(f"{url}/healthz/ready", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"runtime {name} did not become ready")
                time.sleep(0.1)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
