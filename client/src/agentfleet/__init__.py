"""agentfleet client SDK: a typed async client for an agentfleet runtime's REST API and
WebSocket (reconnects with backoff and jitter, resumes from the last event id,
re-authenticates, resends unacknowledged messages)."""

from agentfleet.client import AgentfleetClient
from agentfleet.errors import (
    AgentfleetClientError,
    APIError,
    AuthenticationError,
    MessageRejectedError,
    RealtimeClosedError,
)
from agentfleet.models import (
    Ack,
    Agent,
    BulkItemResult,
    BulkResult,
    Event,
    Page,
    Session,
    TurnResult,
)
from agentfleet.realtime import RealtimeClient, SessionState, TurnView

__all__ = [
    "APIError",
    "Ack",
    "Agent",
    "AgentfleetClient",
    "AgentfleetClientError",
    "AuthenticationError",
    "BulkItemResult",
    "BulkResult",
    "Event",
    "MessageRejectedError",
    "Page",
    "RealtimeClient",
    "RealtimeClosedError",
    "Session",
    "SessionState",
    "TurnResult",
    "TurnView",
]
