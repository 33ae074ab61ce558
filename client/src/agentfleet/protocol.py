"""The runtime's WebSocket protocol, defined once: the runtime validates frames with these
models and the SDK builds and parses them with the same ones.

Endpoint ``/api/v1/ws`` (several sessions per connection) and the older per-session
``/api/v1/sessions/{id}/ws?after=N`` (subscribed to that session from the start, no
``welcome`` frame). Frames are JSON text frames with a ``type``.

Client → server: ``auth`` (the token, as the first frame, when no ``Authorization``
header was sent), ``subscribe``, ``unsubscribe``, ``message``, ``ping``, ``pong``.

Server → client: ``welcome``, ``subscribed``, ``unsubscribed``, ``event``, ``gap``,
``ack``, ``error``, ``ping``, ``pong``.

Close codes are :class:`CloseCode`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1


class CloseCode(IntEnum):
    """Why the server closed a connection, and what a client should do about it."""

    #: Normal closure (the client asked for it).
    NORMAL = 1000
    #: A tenant quota (``max_websockets``) is reached: reconnect after the reason's
    #: ``retry-after=N`` hint (:func:`retry_after_hint`), once a connection was closed.
    POLICY_VIOLATION = 1008
    #: Internal server error: reconnect with backoff.
    INTERNAL_ERROR = 1011
    #: The server is shutting down (draining): reconnect, to another replica.
    SERVICE_RESTART = 1012
    #: The replica is saturated (admission control): reconnect after the reason's
    #: ``retry-after=N`` hint, preferably to another replica.
    TRY_AGAIN_LATER = 1013
    #: A frame was not valid JSON or not a known frame: fix the client, do not retry.
    BAD_FRAME = 4400
    #: No token, or the token is not valid: get a new token, then reconnect.
    UNAUTHORIZED = 4401
    #: The token expired while connected: get a new token, then reconnect.
    TOKEN_EXPIRED = 4402
    #: The principal may not do this: do not retry.
    FORBIDDEN = 4403
    #: No ``auth`` frame in time, or the heartbeat was not answered: reconnect.
    TIMEOUT = 4408
    #: The client did not read its frames fast enough: reconnect and resume.
    SLOW_CONSUMER = 4429


def with_retry_after(reason: str, seconds: int) -> str:
    """A close reason carrying a retry hint: ``"<reason>; retry-after=<seconds>"``."""
    return f"{reason}; retry-after={seconds}"


def retry_after_hint(reason: str | None) -> float | None:
    """The seconds of a close reason's ``retry-after=N`` hint (``None`` without one)."""
    for part in (reason or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


#: Close codes after which reconnecting cannot help.
TERMINAL_CLOSE_CODES = frozenset({CloseCode.BAD_FRAME, CloseCode.FORBIDDEN})
#: Close codes after which a client re-authenticates before reconnecting.
REAUTH_CLOSE_CODES = frozenset({CloseCode.UNAUTHORIZED, CloseCode.TOKEN_EXPIRED})


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- client → server ---------------------------------------------------------------------


class AuthFrame(_Frame):
    type: Literal["auth"] = "auth"
    token: str = Field(min_length=1, max_length=8192)


class SubscribeFrame(_Frame):
    type: Literal["subscribe"] = "subscribe"
    session_id: str = Field(min_length=1, max_length=128)
    #: Deliver every event with a larger id (0: the whole kept history), then live ones.
    after: int = Field(default=0, ge=0)


class UnsubscribeFrame(_Frame):
    type: Literal["unsubscribe"] = "unsubscribe"
    session_id: str = Field(min_length=1, max_length=128)


class MessageFrame(_Frame):
    type: Literal["message"] = "message"
    #: Optional on the per-session endpoint (defaults to its session).
    session_id: str | None = Field(default=None, max_length=128)
    content: str = Field(min_length=1, max_length=100_000)
    #: Resend with the same key until acknowledged: the turn runs once per key.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class PingFrame(_Frame):
    type: Literal["ping"] = "ping"
    ts: float | None = None


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"
    ts: float | None = None


ClientFrame = Annotated[
    AuthFrame | SubscribeFrame | UnsubscribeFrame | MessageFrame | PingFrame | PongFrame,
    Field(discriminator="type"),
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# -- server → client ---------------------------------------------------------------------


class WelcomeFrame(_Frame):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    connection_id: str
    replica: str
    subject: str
    heartbeat_interval: float


class SubscribedFrame(_Frame):
    type: Literal["subscribed"] = "subscribed"
    session_id: str
    after: int
    #: The session's newest event id when the subscription started.
    last_event_id: int


class UnsubscribedFrame(_Frame):
    type: Literal["unsubscribed"] = "unsubscribed"
    session_id: str


class EventFrame(_Frame):
    type: Literal["event"] = "event"
    #: ``{"id", "type", "session_id", "turn_id", "data", "ts"}``.
    event: dict[str, Any]


class GapFrame(_Frame):
    """Events ``after+1 .. next-1`` are no longer kept (the stream is bounded): refetch
    the conversation over REST if they matter."""

    type: Literal["gap"] = "gap"
    session_id: str
    after: int
    next: int


class AckFrame(_Frame):
    """The message is durably accepted (queued in the state store): it will run once."""

    type: Literal["ack"] = "ack"
    session_id: str
    message_id: str
    turn_id: str
    idempotency_key: str
    #: True when this key was accepted before (a resend): nothing new was queued.
    duplicate: bool = False


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    #: A problem ``type`` slug: ``not-found``, ``forbidden``, ``invalid-request``...
    code: str
    detail: str
    session_id: str | None = None
    idempotency_key: str | None = None
    #: The connection stays open unless ``fatal``.
    fatal: bool = False


ServerFrame = Annotated[
    WelcomeFrame
    | SubscribedFrame
    | UnsubscribedFrame
    | EventFrame
    | GapFrame
    | AckFrame
    | ErrorFrame
    | PingFrame
    | PongFrame,
    Field(discriminator="type"),
]
SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)

#: Event types that end a turn.
TERMINAL_EVENT_TYPES = frozenset({"turn.completed", "turn.failed"})
