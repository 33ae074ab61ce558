"""Dead letters: turns that failed permanently, recorded with their input and the reason,
so that an operator can list them, replay them (the same input as a new turn of the same
session) or discard them. Nothing accepted is silently dropped."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agentfleet_runtime.state.base import utcnow

__all__ = ["DeadLetter", "DeadLetterStatus", "DeadLetterStore", "new_dead_letter_id"]


class DeadLetterStatus(StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


def new_dead_letter_id() -> str:
    return f"dl_{uuid.uuid4().hex}"


class DeadLetter(BaseModel):
    id: str = Field(default_factory=new_dead_letter_id)
    agent: str
    session_id: str
    turn_id: str
    #: The session's tenant: only it sees the letter.
    tenant: str = "default"
    #: The user message the turn was answering.
    content: str
    #: The problem type of the failure (``https://agentfleet.dev/problems/...``).
    type: str
    title: str
    detail: str
    #: ``timeout``, ``auth``, ``circuitOpen``... (the resilience layer's error class).
    error_class: str
    retryable: bool = False
    #: More about the failure (e.g. which models failed and why).
    extensions: dict[str, Any] = Field(default_factory=dict)
    status: DeadLetterStatus = DeadLetterStatus.PENDING
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    #: The turn that replayed it.
    replay_turn_id: str | None = None


class DeadLetterStore(Protocol):
    """Where dead letters are kept (memory: one process; Redis: shared by replicas)."""

    async def add(self, letter: DeadLetter) -> None: ...

    async def get(self, letter_id: str) -> DeadLetter | None: ...

    async def list(
        self,
        *,
        agent: str | None = None,
        status: DeadLetterStatus | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Newest first."""
        ...

    async def put(self, letter: DeadLetter) -> None:
        """Store a changed letter (status, replay turn)."""
        ...

    async def delete(self, letter_id: str) -> bool: ...

    async def aclose(self) -> None: ...
