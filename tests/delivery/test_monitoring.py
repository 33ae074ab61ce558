"""The monitoring the chart ships queries metrics that exist: every PromQL expression of
the Grafana dashboard and of the alert rules parses, and every metric it names is one the
runtime (observability/metrics.py) or the operator (observability.py) exports."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml
from delivery_helpers import CHART, ROOT, Renderer
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from agentfleet_operator.observability import OperatorMetrics
from agentfleet_runtime.observability import metrics as runtime_metrics

DASHBOARD = CHART / "files" / "dashboards" / "agentfleet.json"
ALERT_FILES = [
    CHART / "files" / "prometheus" / "alerts.yaml",
    CHART / "files" / "prometheus" / "operator-alerts.yaml",
]
#: Series Prometheus itself adds.
BUILTIN = {"up", "scrape_duration_seconds"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


RUNTIME_METRIC_MODULES = (
    "agentfleet_runtime.app",
    "agentfleet_runtime.observability.metrics",
    "agentfleet_runtime.secrets.metrics",
    "agentfleet_runtime.state.redis_client",
)


def exported_series() -> set[str]:
    """The series names the runtime and the operator expose."""
    # Every collector the runtime registers (metrics.py, the state backend's, the
    # secrets'...), as the generated metrics reference lists them.
    for module in RUNTIME_METRIC_MODULES:
        importlib.import_module(module)
    metrics: list[Any] = [
        collector
        for collector in list(REGISTRY._collector_to_names)
        if any(name.startswith("agentfleet") for name in REGISTRY._collector_to_names[collector])
    ]
    metrics += [
        value for value in vars(runtime_metrics).values() if isinstance(value, MetricWrapperBase)
    ]
    operator = OperatorMetrics()
    metrics += [v for v in vars(operator).values() if isinstance(v, MetricWrapperBase)]
    names: set[str] = set()
    for metric in metrics:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def selectors(node: Any) -> Iterator[str]:
    """The metric names of every vector selector in a PromQL syntax tree."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield from selectors(node.vector_selector)
        return
    for attribute in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from selectors(child)
    for child in getattr(node, "args", None) or []:
        yield from selectors(child)


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by what they become in a query."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), *\w+\)", variable["definition"])
            assert match, variable["definition"]
            queries.append((f"variable {variable['name']}", match.group(1)))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    queries: list[tuple[str, str]] = []
    for path in ALERT_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            queries += [
                (rule.get("alert") or rule["record"], rule["expr"]) for rule in group["rules"]
            ]
    return queries


@pytest.mark.parametrize(
    ("source", "queries"),
    [("dashboard", dashboard_queries()), ("alerts", alert_queries())],
    ids=["dashboard", "alerts"],
)
def test_every_query_names_real_metrics(source: str, queries: list[tuple[str, str]]) -> None:
    exported = exported_series() | BUILTIN
    assert queries
    unknown: list[str] = []
    for title, expr in queries:
        try:
            tree = promql_parser.parse(grafana_to_promql(expr))
        except Exception as exc:  # the parser raises plain exceptions
            pytest.fail(f"{source} {title!r}: PromQL does not parse: {exc}\n{expr}")
        names = list(selectors(tree))
        assert names, f"{source} {title!r} queries no metric"
        unknown += [f"{title}: {name}" for name in names if name not in exported]
    assert not unknown, f"{source} queries metrics nobody exports: {unknown}"


def test_the_check_knows_the_metrics() -> None:
    """The extraction above is not a no-op."""
    exported = exported_series()
    assert {
        "agentfleet_turns_total",
        "agentfleet_turn_duration_seconds_bucket",
        "agentfleet_circuit_breaker_state",
        "agentfleet_operator_reconciles_total",
    } <= exported
    tree = promql_parser.parse('sum(rate(a_total{x="y"}[5m])) / on() group_left b or c')
    assert sorted(selectors(tree)) == ["a_total", "b", "c"]


def test_dashboard_covers_retries_breakers_latency_and_errors() -> None:
    text = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "agentfleet_resilience_retries_total",
        "agentfleet_circuit_breaker_state",
        "agentfleet_turn_duration_seconds_bucket",
        "agentfleet_dependency_call_duration_seconds_bucket",
        "agentfleet_dependency_calls_total",
        "agentfleet_turns_total",
    ):
        assert metric in text


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "agentfleet-overview"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]


def test_dashboard_config_map(render: Renderer) -> None:
    docs = render(sets=["metrics.grafanaDashboard.enabled=true"])
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["agentfleet.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8")
    )


def test_service_monitors_scrape_the_operator_and_the_agents(render: Renderer) -> None:
    docs = render(sets=["metrics.serviceMonitor.enabled=true"])
    monitors = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "ServiceMonitor"}
    operator_service = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "agentfleet-operator"
    )
    assert (
        monitors["agentfleet-operator"]["endpoints"][0]["port"]
        == (operator_service["spec"]["ports"][0]["name"])
    )
    agents = monitors["agentfleet-agents"]
    # The labels and port name the operator puts on every Agent's Service.
    from agentfleet_operator.render.meta import agent_labels

    labels = agent_labels("any")
    for key, value in agents["selector"]["matchLabels"].items():
        assert labels[key] == value
    assert agents["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s"}
    assert agents["namespaceSelector"] == {"any": True}
    assert (ROOT / "charts").exists()
