"""Prometheus metrics of the runtime: fixed names and labels, defined once here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AGENTS_LOADED = Gauge("agentfleet_agents_loaded", "Agents loaded in this runtime process")
SESSIONS_CREATED = Counter("agentfleet_sessions_created_total", "Sessions created", ["agent"])
TURNS = Counter("agentfleet_turns_total", "Turns run, by outcome", ["agent", "outcome"])
TURN_SECONDS = Histogram(
    "agentfleet_turn_duration_seconds",
    "Wall time of a turn, model and tool calls included",
    ["agent"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
HTTP_REQUESTS = Counter(
    "agentfleet_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
MODEL_CALL_SECONDS = Histogram(
    "agentfleet_model_call_duration_seconds",
    "Wall time of one model call (a whole stream for streamed calls)",
    ["provider", "model", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOOL_CALL_SECONDS = Histogram(
    "agentfleet_tool_call_duration_seconds",
    "Wall time of one tool call, by outcome (ok, error)",
    ["tool", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_TOKENS = Counter(
    "agentfleet_model_tokens_total",
    "Tokens reported by model providers",
    ["provider", "model", "direction"],
)
