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

# -- resilience (issue #4): one set of names for every dependency ----------------------
# ``dependency`` is ``llm:<provider>/<model>``, ``mcp:<server>``, ``redis``...; ``category``
# the ResiliencePolicy's service category (llm, database, http, storage, queue).

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip

DEPENDENCY_CALLS = Counter(
    "agentfleet_dependency_calls_total",
    "Calls through a dependency's resilience pipeline (retries included in one call), by "
    "outcome: success, failure (the dependency failed), rejected (refused by the pipeline)",
    ["dependency", "category", "outcome"],
)
DEPENDENCY_CALL_SECONDS = Histogram(
    "agentfleet_dependency_call_duration_seconds",
    "Wall time of a call through a dependency's pipeline, retries and waits included",
    ["dependency", "category", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
DEPENDENCY_ATTEMPTS = Counter(
    "agentfleet_dependency_attempts_total",
    "Attempts made on a dependency (first attempts and retries), by outcome (success or "
    "the error class of the failure)",
    ["dependency", "category", "outcome"],
)
DEPENDENCY_ERRORS = Counter(
    "agentfleet_dependency_errors_total",
    "Failed attempts on a dependency, by error class",
    ["dependency", "category", "error_class"],
)
RETRIES = Counter(
    "agentfleet_resilience_retries_total",
    "Retries scheduled, by the error class that caused them",
    ["dependency", "category", "error_class"],
)
RETRIES_EXHAUSTED = Counter(
    "agentfleet_resilience_retries_exhausted_total",
    "Calls that failed after their last allowed attempt (attempts, budget or Retry-After "
    "beyond the longest delay)",
    ["dependency", "category"],
)
REJECTIONS = Counter(
    "agentfleet_resilience_rejections_total",
    "Calls refused without reaching the dependency, by reason (circuit_open, "
    "bulkhead_full, rate_limited, budget_exhausted)",
    ["dependency", "category", "reason"],
)
BREAKER_STATE = Gauge(
    "agentfleet_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open (forced states included)",
    ["breaker"],
)
BREAKER_TRANSITIONS = Counter(
    "agentfleet_circuit_breaker_transitions_total",
    "Circuit breaker state changes (from_state → to_state)",
    ["breaker", "from_state", "to_state"],
)
BULKHEAD_IN_FLIGHT = Gauge(
    "agentfleet_bulkhead_in_flight",
    "Calls holding a bulkhead slot",
    ["bulkhead"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "agentfleet_rate_limit_wait_seconds",
    "Time spent waiting for a client-side rate-limit permit",
    ["limiter", "kind"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_FALLBACKS = Counter(
    "agentfleet_model_fallbacks_total",
    "Model calls handed to the next model of an agent's fallback chain",
    ["agent", "from_model", "to_model", "reason"],
)
DEGRADED_ANSWERS = Counter(
    "agentfleet_degraded_answers_total",
    "Turns answered with a degraded answer (no model could answer, or a stream broke)",
    ["agent", "reason"],
)
TOOL_CALLS_CAPPED = Counter(
    "agentfleet_tool_calls_capped_total",
    "Tool calls not made because the tool already failed too often in the turn",
    ["tool"],
)
DEAD_LETTERS = Counter(
    "agentfleet_dead_letters_total",
    "Turns that failed permanently and were recorded as dead letters, by reason",
    ["agent", "reason"],
)
LLM_TOKENS = Counter(
    "agentfleet_llm_tokens_total",
    "Model tokens used, per agent, tenant (the agent's namespace), provider and model",
    ["agent", "tenant", "provider", "model", "direction"],
)
LLM_COST = Counter(
    "agentfleet_llm_cost_usd_total",
    "Estimated cost of model calls in US dollars (the price table of "
    "observability/costs.py or AGENTFLEET_OBSERVABILITY__MODEL_PRICES)",
    ["agent", "tenant", "provider", "model"],
)
FEATURE_FLAG = Gauge(
    "agentfleet_resilience_feature_flag",
    "Resilience feature flags: 1 on, 0 off",
    ["flag"],
)
