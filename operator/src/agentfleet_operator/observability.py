"""The operator's metrics (Prometheus) and structured logs (one JSON object per line).

Metrics live in a registry of their own per operator instance (no module-level globals:
several operators can run in one process, as the tests do); the health server exposes it
at ``/metrics``.

=================================================  ==========  ================================
metric                                             type        labels
=================================================  ==========  ================================
``agentfleet_operator_reconciles_total``           counter     ``kind``, ``result``
                                                               (``success``, ``requeued``,
                                                               ``error``)
``agentfleet_operator_reconcile_errors_total``     counter     ``kind``, ``error``
``agentfleet_operator_reconcile_duration_seconds`` histogram   ``kind``
``agentfleet_operator_queue_depth``                gauge       (keys waiting)
``agentfleet_operator_api_requests_total``         counter     ``method``, ``code``
``agentfleet_operator_api_request_duration_seconds`` histogram ``method``
``agentfleet_operator_drift_corrections_total``    counter     ``kind`` (owned object kind)
``agentfleet_operator_leader``                     gauge       1 while this replica leads
=================================================  ==========  ================================
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        prefix = "agentfleet_operator"
        self.reconciles = Counter(
            f"{prefix}_reconciles",
            "Reconciles by resource kind and result.",
            ["kind", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{prefix}_reconcile_errors",
            "Failed reconciles by resource kind and error class.",
            ["kind", "error"],
            registry=self.registry,
        )
        self.duration = Histogram(
            f"{prefix}_reconcile_duration_seconds",
            "Time one reconcile takes.",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            f"{prefix}_queue_depth", "Keys waiting to be reconciled.", registry=self.registry
        )
        self.api_requests = Counter(
            f"{prefix}_api_requests",
            "Kubernetes API requests made by reconciles.",
            ["method", "code"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            f"{prefix}_api_request_duration_seconds",
            "Kubernetes API request latency.",
            ["method"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.drift = Counter(
            f"{prefix}_drift_corrections",
            "Owned objects recreated or patched back to the rendered state outside a spec change.",
            ["kind"],
            registry=self.registry,
        )
        self.leader = Gauge(
            f"{prefix}_leader",
            "1 while this replica holds the leader lease.",
            registry=self.registry,
        )

    def observe_request(self, method: str, code: int, seconds: float) -> None:
        self.api_requests.labels(method=method, code=str(code)).inc()
        self.api_duration.labels(method=method).observe(seconds)


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the Kubernetes object the
    record is about (kopf's per-object loggers set ``k8s_ref``), and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            kind, namespace, name = (ref.get(k) for k in ("kind", "namespace", "name"))
            entry["object"] = "/".join(str(part) for part in (kind, namespace, name) if part)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("k8s_") and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, log_format: str = "json", level: int = logging.INFO) -> None:
    """Route every logger (kopf's included) to stderr in ``json`` or ``plain`` format."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
