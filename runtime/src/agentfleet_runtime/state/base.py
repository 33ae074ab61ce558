"""State ports: where agents, sessions and session events live.

``memory`` (development default) and, later, ``redis`` (production) implement the same
protocols and pass the same contract tests. Conversation *content* lives in the LangGraph
checkpointer (one thread per session); these stores hold everything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_runtime.agent.events import TurnEvent


def utcnow() -> datetime:
    return datetime.now(UTC)


class AgentSource(StrEnum):
    """Where an agent definition came from. ``config`` (operator-rendered or manifests
    loaded at start) is read-only through the API; ``api`` agents can be changed."""

    CONFIG = "config"
    API = "api"


class AgentRecord(BaseModel):
    name: str
    namespace: str = "default"
    spec: AgentSpec
    source: AgentSource = AgentSource.API
    created_at: datetime = Field(default_factory=utcnow)


class SessionStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"


class SessionRecord(BaseModel):
    id: str
    agent: str
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    status: SessionStatus = SessionStatus.IDLE
    turns: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AgentStore(Protocol):
    async def put(self, record: AgentRecord) -> None: ...
    async def get(self, name: str) -> AgentRecord | None: ...
    async def list(self) -> list[AgentRecord]: ...
    async def delete(self, name: str) -> bool: ...


class SessionStore(Protocol):
    async def put(self, record: SessionRecord) -> None: ...
    async def get(self, session_id: str) -> SessionRecord | None: ...
    async def list(self, *, agent: str | None = None) -> list[SessionRecord]: ...
    async def delete(self, session_id: str) -> bool: ...


class EventLog(Protocol):
    """Per-session, append-only, bounded log of turn events with increasing ids."""

    async def append(
        self, session_id: str, turn_id: str, type_: str, data: dict[str, Any]
    ) -> TurnEvent: ...

    async def read(self, session_id: str, *, after: int = 0) -> list[TurnEvent]: ...

    def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        """Every event after ``after`` (missed ones first), then live ones, forever."""
        ...

    async def delete(self, session_id: str) -> None: ...
