"""What the REST API returns, as typed models (unknown fields are kept, so a newer
server does not break an older client)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Agent(_Model):
    name: str
    namespace: str = "default"
    source: str
    spec: dict[str, Any]
    tools: list[str] = Field(default_factory=list)
    created_at: datetime


class Session(_Model):
    id: str
    agent: str
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    status: str
    turns: int
    created_at: datetime
    updated_at: datetime


class TurnResult(_Model):
    turn_id: str
    session_id: str
    agent: str
    answer: dict[str, Any]
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    steps: int
    usage: dict[str, int] = Field(default_factory=dict)
    duration_ms: float


class Event(_Model):
    """A session event. ``id`` increases by one per session event."""

    id: int
    type: str
    session_id: str
    turn_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    ts: float | None = None


class Ack(_Model):
    session_id: str
    message_id: str
    turn_id: str
    idempotency_key: str
    duplicate: bool = False


class Page[T](BaseModel):
    """One page of a list: ``items``, ``total`` (matching the filters), ``next_cursor``
    (``None`` on the last page)."""

    items: list[T]
    total: int = 0
    next_cursor: str | None = None


class BulkItemResult(_Model):
    index: int
    status: int
    id: str | None = None
    problem: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class BulkResult(_Model):
    """Per-item outcome of a bulk call (``status`` is what the single call would have
    answered; ``problem`` its RFC 9457 body)."""

    results: list[BulkItemResult]
    succeeded: int
    failed: int
