"""What the agent service calls when a turn fails for good: record it as a dead letter
(never raising: recording a failure must not fail the failure path)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agentfleet_runtime.deadletters.base import DeadLetter, DeadLetterStore
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.resilience.classify import error_class

__all__ = ["DeadLetterRecorder"]

log = logging.getLogger(__name__)


def _not_a_failure(exc: BaseException) -> bool:
    """Errors that end a turn here without it having failed: it moved to another replica
    (lease lost), or the process is stopping (cancelled; the turn is recovered)."""
    return not isinstance(exc, Exception) or type(exc).__name__ == "LeaseLostError"


class DeadLetterRecorder:
    def __init__(self, store: DeadLetterStore, *, enabled: Callable[[], bool] | None = None):
        self.store = store
        self._enabled = enabled or (lambda: True)

    async def record(
        self,
        *,
        agent: str,
        session_id: str,
        turn_id: str,
        content: str,
        exc: BaseException | None = None,
        failure: dict[str, Any] | None = None,
        tenant: str = "default",
    ) -> DeadLetter | None:
        """Record a failed turn from its exception (or its ``turn.failed`` data)."""
        if not self._enabled() or (exc is not None and _not_a_failure(exc)):
            return None
        if isinstance(exc, AgentfleetError):
            problem = {
                "type": exc.problem_type(),
                "title": exc.title,
                "detail": exc.detail,
                "retryable": exc.retryable,
            }
            extensions = {k: v for k, v in exc.extensions.items() if _jsonable(v)}
        else:
            problem = failure or {
                "type": AgentfleetError.problem_type(),
                "title": AgentfleetError.title,
                "detail": f"{type(exc).__name__}: {exc}" if exc else "the turn failed",
                "retryable": False,
            }
            extensions = {}
        kind = error_class(exc) if exc is not None else str(problem.get("reason", "internal"))
        letter = DeadLetter(
            agent=agent,
            tenant=tenant,
            session_id=session_id,
            turn_id=turn_id,
            content=content,
            type=str(problem["type"]),
            title=str(problem["title"]),
            detail=str(problem["detail"]),
            error_class=kind,
            retryable=bool(problem.get("retryable", False)),
            extensions=extensions,
        )
        try:
            await self.store.add(letter)
        except Exception:
            log.exception(
                "could not record dead letter for turn %s", turn_id, extra={"turn": turn_id}
            )
            return None
        metrics.DEAD_LETTERS.labels(agent, kind).inc()
        log.error(
            "turn dead-lettered: %s",
            letter.detail,
            extra={
                "dead_letter": letter.id,
                "agent": agent,
                "session": session_id,
                "turn": turn_id,
                "error_class": kind,
            },
        )
        return letter


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None
