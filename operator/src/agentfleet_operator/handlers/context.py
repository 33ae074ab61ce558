"""Re-exported from :mod:`agentfleet_operator.context` (where it lives, so that the
controller can import it without importing the handlers)."""

from agentfleet_operator.context import (
    BINDINGS_INDEX,
    CONTEXT_KEY,
    MCP_REFERENCES_INDEX,
    METRICS_KEY,
    REFERENCES_INDEX,
    SETTINGS_KEY,
    Indexes,
    OperatorContext,
    context_from,
)

__all__ = [
    "BINDINGS_INDEX",
    "CONTEXT_KEY",
    "MCP_REFERENCES_INDEX",
    "METRICS_KEY",
    "REFERENCES_INDEX",
    "SETTINGS_KEY",
    "Indexes",
    "OperatorContext",
    "context_from",
]
