"""Helpers of the delivery tests (imported by name: conftest.py puts this folder on
``sys.path``): paths, the real tools, the chart renderer, rendered-object accessors.

The tools come from ``scripts/install-delivery-tools`` (``.ci/run`` calls it) into
``.tools/delivery/bin``, or from PATH. A test that needs a tool that is not there skips
and says how to get it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentfleet"
TOOLS_BIN = ROOT / ".tools" / "delivery" / "bin"
RELEASE = "agentfleet"
NAMESPACE = "agentfleet-system"

#: Every values file the chart must render with: the defaults, the environment overlays,
#: the e2e values and the test overlays that switch the remaining options on.
VALUES_FILES: dict[str, Path | None] = {
    "defaults": None,
    **{f"deploy/{p.stem}": p for p in sorted((ROOT / "deploy" / "values").glob("*.yaml"))},
    "e2e": ROOT / "e2e" / "values.yaml",
    **{f"test/{p.stem}": p for p in sorted((Path(__file__).parent / "values").glob("*.yaml"))},
}


def tool(name: str) -> str | None:
    candidate = TOOLS_BIN / name
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = tool(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed: run scripts/install-delivery-tools "
            f"(it installs into .tools/delivery/bin; it could not here, or was not run)"
        )
    return path


def run(
    args: Sequence[str], *, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


class Renderer:
    """``helm template`` of the chart, cached per (values files, --set) combination."""

    def __init__(self, helm: str) -> None:
        self.helm = helm
        self._cached = functools.cache(self._render)

    def _render(self, values: tuple[Path, ...], sets: tuple[str, ...]) -> list[dict[str, Any]]:
        result = self.run(values, sets)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def run(
        self, values: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        args = [self.helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for path in values:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        return run(args)

    def __call__(
        self, values: Sequence[Path | None] = (), sets: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        return self._cached(tuple(p for p in values if p is not None), tuple(sets))


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container_env(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def env_values(
    deployment: dict[str, Any], resolve: Callable[[dict[str, Any]], str] | None = None
) -> dict[str, str]:
    """The container's environment as Kubernetes would give it: ``$(VAR)`` references to
    variables defined earlier are expanded; ``valueFrom`` variables get ``resolve(item)``
    (default: ``<from:NAME>``)."""
    values: dict[str, str] = {}
    for item in container_env(deployment):
        if "value" in item:
            text = str(item["value"])
            for name, value in values.items():
                text = text.replace(f"$({name})", value)
            values[item["name"]] = text
        else:
            values[item["name"]] = resolve(item) if resolve else f"<from:{item['name']}>"
    return values
