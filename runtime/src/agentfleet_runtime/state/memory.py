"""In-memory state: the development default. A real implementation (not a mock) for one
process; state is lost on restart and not shared between replicas."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.state.base import AgentRecord, SessionRecord


class MemoryAgentStore:
    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}

    async def put(self, record: AgentRecord) -> None:
        self._agents[record.name] = record.model_copy(deep=True)

    async def get(self, name: str) -> AgentRecord | None:
        record = self._agents.get(name)
        return record.model_copy(deep=True) if record else None

    async def list(self) -> list[AgentRecord]:
        return [r.model_copy(deep=True) for _, r in sorted(self._agents.items())]

    async def delete(self, name: str) -> bool:
        return self._agents.pop(name, None) is not None


class MemorySessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, SessionRecord] = {}

    async def put(self, record: SessionRecord) -> None:
        self._sessions[record.id] = record.model_copy(deep=True)

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._sessions.get(session_id)
        return record.model_copy(deep=True) if record else None

    async def list(self, *, agent: str | None = None) -> list[SessionRecord]:
        records = [r for r in self._sessions.values() if agent is None or r.agent == agent]
        return [r.model_copy(deep=True) for r in sorted(records, key=lambda r: r.created_at)]

    async def delete(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None


class _SessionEvents:
    def __init__(self, max_events: int) -> None:
        self.events: deque[TurnEvent] = deque(maxlen=max_events)
        self.last_id = 0
        self.changed = asyncio.Condition()


class MemoryEventLog:
    """Keeps the last ``max_events`` events of each session."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._max_events = max_events
        self._sessions: dict[str, _SessionEvents] = {}

    def _session(self, session_id: str) -> _SessionEvents:
        if session_id not in self._sessions:
            self._sessions[session_id] = _SessionEvents(self._max_events)
        return self._sessions[session_id]

    async def append(
        self, session_id: str, turn_id: str, type_: str, data: dict[str, Any]
    ) -> TurnEvent:
        log = self._session(session_id)
        log.last_id += 1
        event: TurnEvent = {
            "id": log.last_id,
            "type": type_,
            "session_id": session_id,
            "turn_id": turn_id,
            "data": data,
        }
        log.events.append(event)
        async with log.changed:
            log.changed.notify_all()
        return event

    async def read(self, session_id: str, *, after: int = 0) -> list[TurnEvent]:
        log = self._sessions.get(session_id)
        if log is None:
            return []
        return [e for e in log.events if e["id"] > after]

    async def follow(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        log = self._session(session_id)
        cursor = after
        while True:
            if log.last_id <= cursor:
                async with log.changed:
                    while log.last_id <= cursor:
                        await log.changed.wait()
            for event in [e for e in log.events if e["id"] > cursor]:
                cursor = event["id"]
                yield event

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
