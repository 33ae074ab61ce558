"""Prometheus metrics of the artifact store: fixed names and labels, defined once here.
(Per-attempt retries, breaker state and latencies are the resilience layer's, under
dependency ``artifacts``: ``agentfleet_dependency_attempts_total{dependency="artifacts"}``.)
"""

from __future__ import annotations

from prometheus_client import Counter

OPERATIONS = Counter(
    "agentfleet_artifacts_operations_total",
    "Artifact store operations, by operation (put, get, head, delete, sweep) and outcome "
    "(ok, not_found, quota_exceeded, too_large, denied, unavailable, error)",
    ["backend", "operation", "outcome"],
)
BYTES_STORED = Counter(
    "agentfleet_artifacts_stored_bytes_total",
    "Bytes written to the artifact store, by kind (tool-result, attachment, transcript)",
    ["backend", "kind"],
)
EXPIRED_DELETED = Counter(
    "agentfleet_artifacts_expired_deleted_total",
    "Expired artifacts deleted by the retention sweep",
    ["backend"],
)
TOOL_RESULTS_OFFLOADED = Counter(
    "agentfleet_artifacts_tool_results_total",
    "Tool results longer than the inline limit, by outcome: stored (the model got a "
    "preview and a reference) or truncated (the store failed: the model got a preview only)",
    ["outcome"],
)
