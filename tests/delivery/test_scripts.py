"""Shell scripts are shellcheck-clean (the e2e script, the tool installer, every script of
the repository and the `run:` steps of the GitHub workflows); the workflows, the
Dependabot config and the compose file validate against their published schemas, and the
workflows do what the delivery plan says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_helpers import ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))


def shell_scripts() -> list[Path]:
    candidates = [
        *ROOT.glob("e2e/*.sh"),
        *ROOT.glob("scripts/*"),
        ROOT / ".ci" / "run",
    ]
    return sorted(
        path
        for path in candidates
        if path.is_file()
        and path.read_text(encoding="utf-8", errors="replace").startswith(
            ("#!/usr/bin/env bash", "#!/bin/bash", "#!/bin/sh")
        )
    )


def test_the_e2e_script_is_complete() -> None:
    script = (ROOT / "e2e" / "run.sh").read_text(encoding="utf-8")
    for step in (
        "create cluster --name",
        "docker build --target runtime",
        "docker build --target operator",
        "kind load docker-image",
        "upgrade --install agentfleet charts/agentfleet",
        "examples/demo-agent.yaml",
        "--for=condition=Ready",
        "e2e/converse.py start",
        "e2e/converse.py websocket",
        "delete pod",
        "e2e/converse.py survived",
        "kind delete cluster",
    ):
        assert step in script, f"e2e/run.sh lacks: {step}"


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck(shellcheck: str, script: Path) -> None:
    result = run([shellcheck, "--external-sources", "--format=gcc", str(script)])
    assert result.returncode == 0, result.stdout + result.stderr


def _run_steps() -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job_name, job in workflow["jobs"].items():
            for index, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    steps.append((f"{path.name}:{job_name}:{step.get('name', index)}", step["run"]))
    return steps


def test_workflow_run_steps_pass_shellcheck(shellcheck: str, tmp_path: Path) -> None:
    problems: list[str] = []
    for index, (where, body) in enumerate(_run_steps()):
        # ${{ expressions }} are substituted by Actions before bash runs: a word.
        script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", body)
        path = tmp_path / f"step{index}.sh"
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script, encoding="utf-8")
        result = run([shellcheck, "--format=gcc", str(path)])
        if result.returncode != 0:
            problems.append(f"{where}:\n{result.stdout}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("schema", "paths"),
    [
        ("vendor.github-workflows", WORKFLOWS),
        ("custom.github-workflows-require-timeout", WORKFLOWS),
        ("vendor.dependabot", [ROOT / ".github" / "dependabot.yml"]),
        ("vendor.compose-spec", [ROOT / "docker" / "compose.dev.yaml"]),
    ],
    ids=["workflows", "workflows-timeouts", "dependabot", "compose"],
)
def test_schemas(check_jsonschema: str, schema: str, paths: list[Path]) -> None:
    result = run([check_jsonschema, "--builtin-schema", schema, *map(str, paths)])
    assert result.returncode == 0, result.stdout + result.stderr


def _workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8")
    )
    return loaded


def test_ci_runs_lint_tests_with_redis_and_the_chart_checks() -> None:
    ci = _workflow("ci.yaml")
    text = yaml.safe_dump(ci)
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "make test",
        "tests/delivery",
        "helm lint --strict",
        "e2e/local-failover.sh",
        "scripts/install-delivery-tools",
    ):
        assert command in text, command
    assert ci["jobs"]["test"]["services"]["redis"]["image"].startswith("redis:")


def test_images_are_built_and_scanned() -> None:
    text = yaml.safe_dump(_workflow("images.yaml"))
    assert "aquasecurity/trivy-action" in text
    assert "docker/build-push-action" in text
    assert "exit-code: '1'" in text


def test_e2e_and_release_workflows() -> None:
    e2e = yaml.safe_dump(_workflow("e2e.yaml"))
    assert "helm/kind-action" in e2e
    assert "pytest -m e2e e2e/" in e2e
    release = _workflow("release.yaml")
    # PyYAML reads the key `on` as True.
    assert release[True]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*"]
    text = yaml.safe_dump(release)
    for step in (
        "helm push",
        "cosign sign",
        "platforms: linux/amd64,linux/arm64",
        "gh release create",
    ):
        assert step in text, step
