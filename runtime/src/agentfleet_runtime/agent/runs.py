"""Run recording: the record of each turn (``/api/v1/runs``, kept in a
:class:`~agentfleet_runtime.state.runs.RunStore`) written as the turn goes — ``queued``
when its message is accepted, ``running`` when it starts, and how it ended.

Whole-record writes, one per step, so a turn pays one cheap write at its start and one at
its end. A run that cannot be written is logged and never fails the turn. Without a store
(``store=None``) nothing is recorded and every method returns at once.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from agentfleet_runtime.auth.base import DEFAULT_TENANT
from agentfleet_runtime.errors import NotFoundError
from agentfleet_runtime.messages import Message
from agentfleet_runtime.state.base import utcnow
from agentfleet_runtime.state.runs import (
    ANY_RUN,
    RunError,
    RunFilter,
    RunRecord,
    RunStatus,
    RunStore,
    RunToolCall,
    TokenUsage,
)

if TYPE_CHECKING:
    from agentfleet_runtime.agent.graph import TurnContext
    from agentfleet_runtime.agent.service import TurnResult
    from agentfleet_runtime.state.base import Claim, QueuedMessage, SessionRecord, SessionStore

__all__ = ["RunRecorder", "ToolCallRecord", "tool_call_records"]

log = logging.getLogger(__name__)


class ToolCallRecord(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool


def tool_call_records(messages: list[Message]) -> list[ToolCallRecord]:
    """Pair each tool call the model made with its result."""
    results = {m.get("tool_call_id"): m for m in messages if m["role"] == "tool"}
    records: list[ToolCallRecord] = []
    for message in messages:
        for call in message.get("tool_calls", []):
            result = results.get(call["id"])
            records.append(
                {
                    "id": call["id"],
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "result": result["content"] if result else "",
                    "is_error": bool(result.get("is_error")) if result else True,
                }
            )
    return records


class RunRecorder:
    """Writes and reads the runs of the agent service's turns."""

    def __init__(self, store: RunStore | None, sessions: SessionStore) -> None:
        self._store = store
        self._sessions = sessions

    # -- reading --------------------------------------------------------------------------

    async def get(self, run_id: str, *, tenant: str | None = None) -> RunRecord:
        """``tenant``: only that tenant's run (another's is "not found")."""
        record = await self._store.get(run_id) if self._store is not None else None
        if record is None or (tenant is not None and record.tenant != tenant):
            raise NotFoundError(f"run {run_id!r} does not exist", run=run_id)
        return record

    async def list(self, where: RunFilter = ANY_RUN) -> list[RunRecord]:
        if self._store is None:
            return []
        return await self._store.list(where)

    async def delete_session(self, session_id: str) -> None:
        if self._store is not None:
            await self._store.delete_session(session_id)

    # -- a turn's steps -------------------------------------------------------------------

    async def queued(self, message: QueuedMessage, session: SessionRecord) -> None:
        """Record an accepted message's turn, unless it has a record already (never over
        the record of a turn that started first)."""
        if self._store is None:
            return
        queued = RunRecord(
            id=message.turn_id,
            session_id=session.id,
            agent=session.agent,
            tenant=session.tenant,
            created_at=datetime.fromtimestamp(message.accepted_at, UTC),
        )
        try:
            await self._store.create(queued)
        except Exception:  # not worth failing the accepted message for
            log.warning("could not record run %s", queued.id, exc_info=True)

    async def started(
        self,
        session: SessionRecord,
        agent: str,
        model: str,
        turn_id: str,
        attempt: int,
        accepted_at: float | None,
    ) -> RunRecord | None:
        """Record that the turn runs; the record to end (``None``: not recorded)."""
        if self._store is None:
            return None
        now = utcnow()
        run = RunRecord(
            id=turn_id,
            session_id=session.id,
            agent=agent,
            tenant=session.tenant,
            status=RunStatus.RUNNING,
            model=model,
            attempt=attempt,
            created_at=datetime.fromtimestamp(accepted_at, UTC) if accepted_at else now,
            started_at=now,
        )
        await self._put(run)
        return run

    async def ended(
        self,
        run: RunRecord | None,
        context: TurnContext,
        started: float,
        *,
        result: TurnResult | None = None,
        failure: dict[str, Any] | None = None,
        dead_letter: str | None = None,
    ) -> None:
        """Record how the turn ended: its ``result``, or its ``failure`` (a problem's
        fields, and the ``dead_letter`` it was recorded as). ``started``: the
        ``perf_counter`` reading at its start."""
        if run is None:
            return
        usage = TokenUsage(
            input_tokens=context.usage.input_tokens, output_tokens=context.usage.output_tokens
        )
        if result is not None:
            calls, steps, duration = result.tool_calls, result.steps, result.duration_ms
        else:
            calls = tool_call_records(context.produced)
            steps = context.usage.model_calls
            duration = round((time.perf_counter() - started) * 1000, 3)
        status = RunStatus.COMPLETED
        if result is None:
            status = RunStatus.FAILED if dead_letter is None else RunStatus.DEAD_LETTERED
        await self._put(
            run.model_copy(
                update={
                    "status": status,
                    "model": context.usage.model or run.model,
                    "steps": steps,
                    "tool_calls": [
                        RunToolCall(
                            id=c["id"],
                            name=c["name"],
                            arguments=c["arguments"],
                            is_error=c["is_error"],
                        )
                        for c in calls
                    ],
                    "usage": usage,
                    "duration_ms": duration,
                    "finished_at": utcnow(),
                    "error": RunError.model_validate(failure) if failure is not None else None,
                    "degraded": context.degraded,
                    "dead_letter_id": dead_letter,
                }
            )
        )

    async def exhausted(
        self, claim: Claim, failure: dict[str, Any], dead_letter: str | None
    ) -> None:
        """Record the failure of a turn interrupted more often than recoveries allow."""
        if self._store is None:
            return
        message = claim.message
        run = await self._store.get(message.turn_id)
        if run is None:
            session = await self._sessions.get(message.session_id)
            run = RunRecord(
                id=message.turn_id,
                session_id=message.session_id,
                agent=session.agent if session is not None else "",
                tenant=session.tenant if session is not None else DEFAULT_TENANT,
                created_at=datetime.fromtimestamp(message.accepted_at, UTC),
            )
        status = RunStatus.FAILED if dead_letter is None else RunStatus.DEAD_LETTERED
        await self._put(
            run.model_copy(
                update={
                    "status": status,
                    "attempt": claim.attempt,
                    "finished_at": utcnow(),
                    "error": RunError.model_validate(failure),
                    "dead_letter_id": dead_letter,
                }
            )
        )

    async def _put(self, run: RunRecord) -> None:
        """Write a run's record; failing to is logged and never fails the turn."""
        if self._store is None:
            return
        try:
            await self._store.put(run)
        except Exception:
            log.warning("could not record run %s", run.id, exc_info=True, extra={"run": run.id})
