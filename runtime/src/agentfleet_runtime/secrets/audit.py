"""Audit events: security-relevant actions as structured log events (logger
``agentfleet.audit``, field ``audit: true``) and, for in-process sinks, callbacks.

Each event has an ``action`` in the past-tense-ish dotted form (``secret.read``,
``secret.access_denied``, ``secret.rolled_back``...), an ``outcome`` (``allowed``,
``denied``, ``ok``, ``failed``) and the subject fields (``secret``, ``consumer``,
``version``...). Events never carry a secret value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

AUDIT_LOGGER = "agentfleet.audit"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    outcome: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


AuditSink = Callable[[AuditEvent], None]


class AuditLog:
    """Writes audit events to the ``agentfleet.audit`` logger and to registered sinks
    (a sink that raises is logged and skipped)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)
        self._sinks: list[AuditSink] = []

    def add_sink(self, sink: AuditSink) -> Callable[[], None]:
        """Register ``sink``; the returned function removes it."""
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink)

    def record(
        self, action: str, outcome: str, *, level: int = logging.INFO, **fields: Any
    ) -> AuditEvent:
        event = AuditEvent(action=action, outcome=outcome, fields=fields)
        self._log.log(
            level,
            action,
            extra={"audit": True, "action": action, "outcome": outcome, **fields},
        )
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:
                self._log.exception("audit sink failed", extra={"action": action})
        return event
