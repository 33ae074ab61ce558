"""What the chart carries that is defined elsewhere stays equal to it: the CRDs (generated
into crds/manifests/), the operator's RBAC (operator/rbac/), the alert rules
(deploy/prometheus/alerts.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from delivery_helpers import CHART, ROOT, Renderer

GENERATED_CRDS = ROOT / "crds" / "manifests"
CHART_CRDS = CHART / "crds"
OPERATOR_RBAC = ROOT / "operator" / "rbac"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
CHART_ALERTS = CHART / "files" / "prometheus" / "alerts.yaml"
CHART_OPERATOR_ALERTS = CHART / "files" / "prometheus" / "operator-alerts.yaml"


def test_chart_crds_equal_the_generated_ones() -> None:
    generated = {p.name: p for p in GENERATED_CRDS.glob("*.agentfleet.dev.yaml")}
    shipped = {p.name: p for p in CHART_CRDS.glob("*.yaml")}
    fix = "cp crds/manifests/*.agentfleet.dev.yaml charts/agentfleet/crds/"
    assert generated, "no generated CRDs in crds/manifests"
    assert sorted(shipped) == sorted(generated), f"the chart's CRD files differ; run: {fix}"
    stale = [
        name for name, path in generated.items() if shipped[name].read_bytes() != path.read_bytes()
    ]
    assert not stale, f"stale CRDs in the chart: {stale}; run: {fix}"


def _rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Rules as (apiGroup, resource, resourceName, verb) grants: equal sets grant the same."""
    grants: set[tuple[str, str, str, str]] = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for name in rule.get("resourceNames", ["*"]):
                    for verb in rule["verbs"]:
                        grants.add((group, resource, name, verb))
    return grants


def _roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d and d.get("kind") == kind]


@pytest.fixture
def operator_rbac() -> list[dict[str, Any]]:
    if not OPERATOR_RBAC.is_dir() or not list(OPERATOR_RBAC.glob("*.yaml")):
        pytest.skip(
            "operator/rbac/ does not exist yet (issue #3): the chart's RBAC is compared with "
            "it once it does"
        )
    docs: list[dict[str, Any]] = []
    for path in sorted(OPERATOR_RBAC.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_chart_rbac_equals_the_operators(
    render: Renderer, operator_rbac: list[dict[str, Any]], namespaced: bool
) -> None:
    sets = ["operator.watchNamespaces={team-a,team-b}"] if namespaced else []
    chart = render(sets=sets)
    want_cluster = _rule_set([r for d in _roles(operator_rbac, "ClusterRole") for r in d["rules"]])
    got_cluster = _rule_set([r for d in _roles(chart, "ClusterRole") for r in d["rules"]])
    assert got_cluster == want_cluster, (
        f"only in the chart: {sorted(got_cluster - want_cluster)}; "
        f"only in operator/rbac: {sorted(want_cluster - got_cluster)}"
    )
    want_ns = _rule_set([r for d in _roles(operator_rbac, "Role") for r in d["rules"]])
    got_ns = _rule_set([r for d in _roles(chart, "Role") for r in d["rules"]])
    assert got_ns == want_ns


def test_every_chart_role_is_bound_to_the_operator(render: Renderer) -> None:
    for sets in ([], ["operator.watchNamespaces={team-a}"]):
        docs = render(sets=sets)
        roles = {
            (d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in {"Role", "ClusterRole"}
        }
        bound = {
            (d["roleRef"]["kind"], d["roleRef"]["name"])
            for d in docs
            if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        }
        assert roles == bound
        for binding in (d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}):
            assert binding["subjects"] == [
                {
                    "kind": "ServiceAccount",
                    "name": "agentfleet-operator",
                    "namespace": "agentfleet-system",
                }
            ]


def _rules_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A Prometheus rules file (groups:) or a PrometheusRule object (spec.groups)."""
    if document.get("kind") == "PrometheusRule":
        groups: list[dict[str, Any]] = document["spec"]["groups"]
    else:
        groups = document["groups"]
    return groups


def test_chart_alerts_equal_deploy_prometheus() -> None:
    if not ALERTS.exists():
        pytest.skip(
            "deploy/prometheus/alerts.yaml does not exist yet (issue #4): the chart's "
            "PrometheusRule is compared with it once it does"
        )
    want = _rules_of(yaml.safe_load(ALERTS.read_text(encoding="utf-8")))
    got = _rules_of(yaml.safe_load(CHART_ALERTS.read_text(encoding="utf-8")))
    assert got == want, (
        "the chart's alert rules differ from deploy/prometheus/alerts.yaml; run: "
        "cp deploy/prometheus/alerts.yaml charts/agentfleet/files/prometheus/alerts.yaml"
    )


def test_prometheus_rule_carries_the_rules_untemplated(render: Renderer) -> None:
    docs = render(sets=["metrics.prometheusRule.enabled=true"])
    rules = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PrometheusRule"}
    assert sorted(rules) == ["agentfleet", "agentfleet-operator"]
    for name, path in (
        ("agentfleet", CHART_ALERTS),
        ("agentfleet-operator", CHART_OPERATOR_ALERTS),
    ):
        want = _rules_of(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert rules[name]["spec"]["groups"] == want
    assert "{{ $labels." in Path(CHART_ALERTS).read_text(encoding="utf-8")
