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
# Health-based routing (resilience/balancer.py): ``endpoint`` is ``<host[:port]>/<path>``
# of one endpoint of a dependency with several (a model's baseUrl + endpoints, an MCP
# server's url + endpoints).
ENDPOINT_SELECTED = Counter(
    "agentfleet_endpoint_selected_total",
    "Calls routed to an endpoint of a dependency with several endpoints",
    ["dependency", "endpoint"],
)
ENDPOINT_ERRORS = Counter(
    "agentfleet_endpoint_errors_total",
    "Calls to an endpoint that failed, by error class",
    ["dependency", "endpoint", "error_class"],
)
ENDPOINT_SECONDS = Histogram(
    "agentfleet_endpoint_latency_seconds",
    "Latency of calls to an endpoint (time to the first item for streams)",
    ["dependency", "endpoint"],
    buckets=_LATENCY_BUCKETS,
)
ENDPOINT_EJECTED = Gauge(
    "agentfleet_endpoint_ejected",
    "1 while an endpoint is ejected (its circuit breaker refuses calls), else 0",
    ["dependency", "endpoint"],
)
ENDPOINT_FAILOVERS = Counter(
    "agentfleet_endpoint_failovers_total",
    "Calls moved to another endpoint after one failed, by the error class",
    ["dependency", "error_class"],
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

# -- discovery, hot reload, registration (issue #9) --------------------------------------
DISCOVERY_SOURCE_UP = Gauge(
    "agentfleet_discovery_source_up",
    "Whether a discovery source (config-file, mcp-registry, instances) was read at its last "
    "try (0: serving from the last known configuration)",
    ["source"],
)
DISCOVERY_LAST_SUCCESS = Gauge(
    "agentfleet_discovery_last_success_timestamp_seconds",
    "Unix time a discovery source was last read successfully",
    ["source"],
)
CONFIG_RELOADS = Counter(
    "agentfleet_config_reloads_total",
    "Runtime config changes seen, by outcome (applied, rejected: did not parse or validate, "
    "rolled_back: an agent's new version failed its health checks)",
    ["outcome"],
)
CONFIG_AGENT_CHANGES = Counter(
    "agentfleet_config_agent_changes_total",
    "Agents changed by a runtime config reload, by change (added, removed, switched, rolled_back)",
    ["change"],
)
INSTANCES = Gauge(
    "agentfleet_instances",
    "Runtime replicas registered in the state backend, by state (ready, not_ready, stale)",
    ["state"],
)

# -- MCP servers: versions, pins, hot reload (issue #9) ----------------------------------
MCP_SERVER_INFO = Gauge(
    "agentfleet_mcp_server_info",
    "MCP servers by the protocol version negotiated and the version in their serverInfo "
    "(info-style: the value is how many loaded agents on this replica hold such a "
    "connection; a mixed fleet shows as several series per server)",
    ["server", "protocol_version", "server_version"],
)
MCP_TOOL_SCHEMA_MISMATCH = Gauge(
    "agentfleet_mcp_tool_schema_mismatch",
    "Pinned MCP tools withheld from the model because the server lists another input "
    "schema or no longer lists them (the value: loaded agents on this replica affected)",
    ["server", "tool"],
)
MCP_RELOADS = Counter(
    "agentfleet_mcp_reloads_total",
    "Hot reloads of an MCP server connection, by outcome (switched: the new connection "
    "passed its checks; rolled_back: it failed them and the old one keeps serving; "
    "failed: it failed them and nothing was serving)",
    ["server", "outcome"],
)
