"""What happens during a turn, as events: streamed to clients (SSE, WebSocket) while the
turn runs, and kept per session so a client can catch up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, NotRequired, TypedDict


class EventType(StrEnum):
    TURN_STARTED = "turn.started"
    #: A turn whose replica went away continues on another one (data: reason, attempt).
    TURN_RESUMED = "turn.resumed"
    MODEL_DELTA = "model.delta"
    MODEL_MESSAGE = "model.message"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"


class TurnEvent(TypedDict):
    """One event. ``id`` increases monotonically per session (assigned when recorded)."""

    id: int
    type: str
    session_id: str
    turn_id: str
    data: dict[str, Any]
    #: When the event was recorded (Unix time, seconds).
    ts: NotRequired[float]


#: Where the agent reports events while a turn runs: ``await emit(type, data)``.
Emit = Callable[[EventType, dict[str, Any]], Awaitable[None]]


async def discard(_type: EventType, _data: dict[str, Any]) -> None:
    """An :data:`Emit` that drops events (for callers that only want the result)."""
