"""The alert rules shipped in deploy/prometheus: every metric they use exists in the
runtime, and — where ``promtool`` is installed (Debian: ``apt-get install prometheus``) —
``promtool check rules`` and the rules' unit tests (``promtool test rules``) pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import agentfleet_runtime.observability.metrics  # noqa: F401  (registers the metrics)

RULES = Path(__file__).parents[3] / "deploy" / "prometheus"
METRIC = re.compile(r"\b(agentfleet_[a-z0-9_]+)\b")


def known_metrics() -> set[str]:
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in REGISTRY.collect():  # labelled metrics have no samples until used
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load((RULES / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_metrics_the_runtime_exports() -> None:
    known = known_metrics()
    found = rules()
    assert {r["alert"] for r in found} >= {
        "AgentfleetRetriesExhausted",
        "AgentfleetCircuitBreakerOpen",
    }
    for rule in found:
        used = set(METRIC.findall(str(rule["expr"])))
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']} uses unknown metrics {used - known}"
        labels = rule.get("labels")
        assert isinstance(labels, dict)
        assert labels.get("severity") in {
            "info",
            "warning",
            "critical",
        }
        assert isinstance(rule.get("annotations"), dict)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"]):
        done = subprocess.run(
            ["promtool", *args], cwd=RULES, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
