"""deploy/argocd: the health checks (run in Lua 5.1, Argo CD's dialect) turn the CRDs'
status conditions into Argo CD health, and the Application/ApplicationSet point at files
that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_helpers import CHART, ROOT
from lupa import lua51

ARGOCD = ROOT / "deploy" / "argocd"
HEALTH = yaml.safe_load((ARGOCD / "argocd-cm-health.yaml").read_text(encoding="utf-8"))
PREFIX = "resource.customizations.health."


def crd_kinds() -> set[tuple[str, str]]:
    kinds = set()
    for path in (CHART / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        kinds.add((crd["spec"]["group"], crd["spec"]["names"]["kind"]))
    return kinds


def health(obj: dict[str, Any], kind: str = "Agent") -> dict[str, str]:
    """Run the health script of ``kind`` the way Argo CD does: ``obj`` global, the script's
    return value is the health."""
    script = HEALTH["data"][f"{PREFIX}agentfleet.dev_{kind}"]
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(f"return (function()\n{script}\nend)()")
    return dict(result)


def cond(
    type_: str, status: str, reason: str, message: str = "", generation: int = 3
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def resource(*conditions: dict[str, Any], observed: int | None = 3) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "demo", "generation": 3}, "status": status}


def test_every_crd_kind_has_a_health_check() -> None:
    keys = {key.removeprefix(PREFIX) for key in HEALTH["data"]}
    assert keys == {f"{group}_{kind}" for group, kind in crd_kinds()}


CASES = [
    (
        "no status yet",
        {"metadata": {"generation": 1}},
        "Progressing",
        "Waiting for the agentfleet operator",
    ),
    (
        "old generation",
        resource(cond("Ready", "True", "DeploymentReady"), observed=2),
        "Progressing",
        "generation 3",
    ),
    (
        "ready condition of an old generation",
        resource(cond("Ready", "True", "DeploymentReady", generation=2)),
        "Progressing",
        "generation 3",
    ),
    (
        "ready",
        resource(
            cond("Ready", "True", "DeploymentReady", "2/2 replicas ready"),
            cond("Reconciling", "False", "Reconciled"),
            cond("Degraded", "False", "AsExpected"),
        ),
        "Healthy",
        "DeploymentReady: 2/2 replicas ready",
    ),
    (
        "ready but needs attention",
        resource(
            cond("Ready", "True", "Resolved"),
            cond("Degraded", "True", "SecretShadowed", "key api-key given twice"),
        ),
        "Healthy",
        "needs attention: SecretShadowed",
    ),
    (
        "rolling out",
        resource(
            cond("Ready", "False", "RolloutInProgress", "1/2 ready"),
            cond("Reconciling", "True", "RolloutInProgress", "1/2 ready"),
            cond("Degraded", "False", "AsExpected"),
        ),
        "Progressing",
        "RolloutInProgress: 1/2 ready",
    ),
    (
        "missing reference",
        resource(
            cond("Ready", "False", "MCPServerNotFound", "MCPServer tools not found"),
            cond("Reconciling", "False", "MCPServerNotFound"),
            cond("Degraded", "True", "MCPServerNotFound", "MCPServer tools not found"),
        ),
        "Degraded",
        "MCPServerNotFound: MCPServer tools not found",
    ),
    (
        "stuck rollout",
        resource(
            cond("Ready", "False", "ProgressDeadlineExceeded"),
            cond("Degraded", "True", "ProgressDeadlineExceeded", "image pull"),
        ),
        "Degraded",
        "ProgressDeadlineExceeded: image pull",
    ),
    (
        "scaled to zero",
        resource(
            cond("Ready", "False", "ScaledToZero", "0 replicas wanted"),
            cond("Degraded", "False", "AsExpected"),
        ),
        "Healthy",
        "ScaledToZero",
    ),
    ("unknown", resource(cond("Ready", "Unknown", "Probing")), "Progressing", "Probing"),
    ("no conditions", resource(), "Progressing", "Waiting for the agentfleet operator"),
]


@pytest.mark.parametrize(
    ("obj", "status", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("kind", ["Agent", "MCPServer", "ResiliencePolicy", "SecretBinding"])
def test_health(obj: dict[str, Any], status: str, message: str, kind: str) -> None:
    result = health(obj, kind)
    assert result["status"] == status
    assert message in result["message"]


def test_health_of_what_the_operator_writes() -> None:
    """The conditions the operator's own status functions produce map as intended."""
    from agentfleet_operator.status import ConditionType

    assert {c.value for c in ConditionType} == {"Ready", "Reconciling", "Degraded"}
    script = HEALTH["data"][f"{PREFIX}agentfleet.dev_Agent"]
    for condition in ConditionType:
        assert f'conditions["{condition.value}"]' in script


def _applications() -> list[tuple[str, dict[str, Any]]]:
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text(encoding="utf-8"))
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text(encoding="utf-8"))
    found = [("application", app["spec"]["source"])]
    for element in appset["spec"]["generators"][0]["list"]["elements"]:
        source = yaml.safe_load(
            yaml.safe_dump(appset["spec"]["template"]["spec"]["source"])
            .replace("{{.environment}}", element["environment"])
            .replace("{{.targetRevision}}", element["targetRevision"])
        )
        found.append((element["environment"], source))
    return found


@pytest.mark.parametrize(("name", "source"), _applications(), ids=[n for n, _ in _applications()])
def test_applications_point_at_the_chart_and_existing_values(
    name: str, source: dict[str, Any]
) -> None:
    chart = ROOT / source["path"]
    assert (chart / "Chart.yaml").exists()
    for values in source["helm"]["valueFiles"]:
        path = (chart / values).resolve()
        assert path.is_relative_to(ROOT), f"{values} leaves the repository (Argo CD refuses)"
        assert path.exists(), f"{name}: {values} does not exist"
    assert source["helm"]["releaseName"] == "agentfleet"


def test_applicationset_covers_every_environment() -> None:
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text(encoding="utf-8"))
    environments = {e["environment"] for e in appset["spec"]["generators"][0]["list"]["elements"]}
    assert environments == {p.stem for p in (ROOT / "deploy" / "values").glob("*.yaml")}
    assert Path(ROOT / "deploy" / "argocd" / "application.yaml").exists()
