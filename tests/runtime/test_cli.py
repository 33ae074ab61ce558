"""The commands of the README, run as a user runs them: real processes, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from agentfleet_runtime.testing.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "agentfleet")


def _start_dev(*args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [CLI, "dev", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"agentfleet dev exited: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            if httpx2.get(f"{base}/healthz/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("agentfleet dev did not become ready in 30 s")


@pytest.fixture
def dev_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, base = _start_dev()
    yield proc, base
    proc.terminate()
    proc.wait(timeout=30)


def test_agentfleet_dev_serves_the_demo_agent_offline(
    dev_server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, base = dev_server
    session = httpx2.post(f"{base}/api/v1/sessions", json={"agent": "demo"}).json()["id"]
    turn = httpx2.post(
        f"{base}/api/v1/sessions/{session}/messages",
        json={"content": "calculate 2*(3+4)"},
        timeout=30,
    ).json()
    assert turn["tool_calls"][0]["name"] == "calculate"
    assert turn["tool_calls"][0]["result"] == "14"
    assert "14" in turn["answer"]["content"]
    proc.terminate()
    output, _ = proc.communicate(timeout=30)
    assert "OFFLINE FAKE MODEL" in output  # says so plainly at start-up
    # SIGTERM: graceful shutdown first (uvicorn then re-raises the signal to exit).
    assert "Application shutdown complete" in output


def test_agentfleet_dev_loads_the_same_manifests_kubectl_applies() -> None:
    proc, base = _start_dev("-f", "examples/demo-agent.yaml")
    try:
        agents = httpx2.get(f"{base}/api/v1/agents").json()["items"]
        assert agents, "the example agent was not loaded"
        agent = agents[0]
        assert agent["source"] == "config"
        assert "calculate" in agent["tools"]  # its stdio MCP server started
        response = httpx2.delete(f"{base}/api/v1/agents/{agent['name']}")
        assert response.status_code == 409  # manifest agents are read-only
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_agentfleet_dev_rejects_a_bad_manifest_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: agentfleet.dev/v1alpha1\nkind: Agent\nmetadata: {name: x}\n"
        "spec: {model: {provider: gemini, name: m}}\n"
    )
    result = subprocess.run(
        [CLI, "dev", "-f", str(bad), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "spec.model.provider" in result.stderr


def test_agentfleet_validate(tmp_path: Path) -> None:
    ok = subprocess.run(
        [CLI, "validate", "examples/"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok: Agent/" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: agentfleet.dev/v1alpha1\nkind: Agent\nmetadata: {name: x}\n"
        "spec: {model: {provider: openai, name: m}, maxSteps: 0}\n"
    )
    failed = subprocess.run([CLI, "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "spec.maxSteps" in failed.stderr
