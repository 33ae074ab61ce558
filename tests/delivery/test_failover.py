"""e2e/local-failover.sh against a real redis-server: the e2e conversation helper
(e2e/converse.py: REST, WebSocket, the survival check) works against the real runtime, and
a conversation survives the replica that served it being killed with SIGKILL — steps 6-8
of the kind e2e, which cannot run here, with processes in place of pods."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from delivery_helpers import ROOT

from agentfleet_runtime.testing.redis import RedisServer
from agentfleet_runtime.testing.servers import free_port


@pytest.mark.timeout(240)
def test_conversation_survives_a_killed_replica(redis_server: RedisServer) -> None:
    if shutil.which("curl") is None:
        pytest.skip("e2e/local-failover.sh needs curl")
    bin_dir = Path(sys.executable).parent
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "PORT": str(first),
        # A port of its own: PORT+1 may be any process's ephemeral port meanwhile.
        "SECOND_PORT": str(second),
        "AGENTFLEET": str(bin_dir / "agentfleet"),
        "PYTHON": sys.executable,
        "STARTUP_TIMEOUT": "90",
    }
    result = subprocess.run(
        ["bash", str(ROOT / "e2e" / "local-failover.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "REST turn ok" in output
    assert "WebSocket turn ok" in output
    assert "conversation survived" in output
