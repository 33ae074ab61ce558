"""The kind end-to-end test (``e2e/run.sh``), run by pytest where it can run: ``kind``,
``kubectl`` and a working Docker engine. Everywhere else it skips and says which is missing.

    pytest -m e2e e2e/          # CI's e2e job (.github/workflows/e2e.yaml)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "e2e" / "run.sh"


def missing_prerequisites() -> list[str]:
    """Why the e2e cannot run here (empty when it can)."""
    missing = [
        f"`{tool}` is not on PATH"
        for tool in ("docker", "kind", "kubectl", "curl")
        if shutil.which(tool) is None
    ]
    if shutil.which("docker") is not None:
        try:
            info = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired:
            missing.append("no Docker engine (`docker info` timed out)")
        else:
            if info.returncode != 0:
                lines = (info.stderr or info.stdout).strip().splitlines()
                detail = f": {lines[-1]}" if lines else ""
                missing.append(f"no Docker engine (`docker info` failed{detail})")
    if shutil.which("helm") is None and not (ROOT / ".tools/delivery/bin/helm").exists():
        missing.append("no helm (run scripts/install-delivery-tools)")
    return missing


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_kind_end_to_end() -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip("the kind e2e needs kind and a Docker engine: " + "; ".join(missing))
    result = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=os.environ.copy(), check=False)
    assert result.returncode == 0, "e2e/run.sh failed: its output above says where"
