"""The Dockerfile: hadolint-clean, and the facts the rest of the project relies on (the
UID the operator renders pods with, the entry points, the config path, a dependency layer
cached apart from the sources, no HEALTHCHECK, OCI labels)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from delivery_helpers import ROOT, run

from agentfleet_crds.contract import CONFIG_MOUNT_PATH
from agentfleet_operator.render.agent import RUNTIME_PORT, RUNTIME_UID
from agentfleet_operator.settings import OperatorSettings

DOCKERFILE = ROOT / "Dockerfile"
OCI_LABELS = {"title", "description", "source", "version", "revision", "created", "licenses"}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> dict[str, Stage]:
    """Stages by name, instructions with continuation lines joined (comments dropped)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", args.strip(), re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            stage = Stage(match.group(2), match.group(1))
            stages[stage.name] = stage
        elif stage is not None:
            stage.instructions.append((keyword, args.strip()))
    return stages


def inherited(stages: dict[str, Stage], name: str, keyword: str) -> list[str]:
    """An instruction's arguments in a stage and the stages it is built FROM."""
    stage = stages[name]
    parent = stages.get(stage.base)
    return (inherited(stages, parent.name, keyword) if parent else []) + stage.all(keyword)


def test_hadolint_clean(hadolint: str) -> None:
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n", encoding="utf-8")
    assert run([hadolint, "--no-color", str(bad)]).returncode != 0


def test_images_run_as_the_uid_the_operator_renders() -> None:
    stages = parse()
    for target in ("runtime", "operator", "dev"):
        users = inherited(stages, target, "USER")
        assert users[-1] == f"{RUNTIME_UID}:{RUNTIME_UID}", target
    base_run = " ".join(stages["base"].all("RUN"))
    assert f"--uid {RUNTIME_UID}" in base_run
    assert f"--gid {RUNTIME_UID}" in base_run


def test_no_healthcheck_kubernetes_probes_own_health() -> None:
    assert not re.search(r"^\s*HEALTHCHECK", DOCKERFILE.read_text(encoding="utf-8"), re.M)


def test_entry_points_are_the_projects_console_scripts() -> None:
    scripts: dict[str, str] = {}
    for member in ("runtime", "operator"):
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text(encoding="utf-8"))
        scripts.update(project["project"]["scripts"])
    stages = parse()
    assert stages["runtime"].all("ENTRYPOINT") == ['["agentfleet"]']
    assert stages["operator"].all("ENTRYPOINT") == ['["agentfleet-operator"]']
    assert {"agentfleet", "agentfleet-operator"} <= set(scripts)
    assert stages["runtime"].all("CMD") == [f'["serve", "--config", "{CONFIG_MOUNT_PATH}"]']
    assert stages["runtime"].all("EXPOSE") == [str(RUNTIME_PORT)]
    health_port = OperatorSettings().health_address.rpartition(":")[2]
    assert stages["operator"].all("EXPOSE") == [health_port]


def test_dependencies_are_a_layer_of_their_own() -> None:
    """Each build stage installs the locked dependencies (only pyproject files and uv.lock
    mounted) before it copies any source, then installs the project's packages."""
    stages = parse()
    build_env = " ".join(stages["build"].all("ENV"))
    for setting in ("UV_FROZEN=1", "UV_COMPILE_BYTECODE=1", "UV_PYTHON_DOWNLOADS=never"):
        assert setting in build_env
    for name, package in (
        ("runtime-build", "agentfleet-runtime"),
        ("operator-build", "agentfleet-operator"),
    ):
        steps = stages[name].instructions
        syncs = [i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "uv sync" in args]
        copies = [i for i, (kw, _) in enumerate(steps) if kw == "COPY"]
        assert len(syncs) == 2, name
        first, second = (steps[i][1] for i in syncs)
        assert syncs[0] < min(copies) < syncs[1], name
        assert "--no-install-workspace" in first
        assert "--mount=type=cache" in first
        assert "--no-editable" in second
        for args in (first, second):
            assert "--no-dev" in args
            assert f"--package {package}" in args


def test_dependency_layer_mounts_every_workspace_member() -> None:
    """uv needs every member's pyproject to read the workspace: the bind mounts follow
    [tool.uv.workspace] members."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members = set(root["tool"]["uv"]["workspace"]["members"])
    for name, stage in parse().items():
        for args in stage.all("RUN"):
            if "--no-install-workspace" not in args:
                continue
            mounted = set(re.findall(r"source=([\w-]+)/pyproject\.toml", args))
            assert mounted == members, (
                f"{name}: mounts {sorted(mounted)}, members {sorted(members)}"
            )


def test_oci_labels() -> None:
    stages = parse()
    for target in ("runtime", "operator"):
        labels = " ".join(inherited(stages, target, "LABEL"))
        found = set(re.findall(r"org\.opencontainers\.image\.(\w+)=", labels))
        assert found >= OCI_LABELS, f"{target} lacks {OCI_LABELS - found}"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then list what the build needs"
    included = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    for stage in parse().values():
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _ = args.split()
            for source in sources:
                top = source.split("/")[0]
                assert top == "." or top in included, f"COPY {source} is ignored by .dockerignore"
