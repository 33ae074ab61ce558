"""The runtime's one audit facility: security-relevant actions as structured events.

Every event goes to the ``agentfleet.audit`` logger (field ``audit: true``: ship it with
the other logs, filter on it) and to the registered sinks — the state backend's audit
store that ``GET /api/v1/audit`` reads (through
:class:`~agentfleet_runtime.state.audit_store.AuditWriter`, in the background: recording
never blocks or fails the request), tests, and whatever an operator adds. An event has:

* ``action``: a dotted name, the verb in the past tense (``api_key.created``,
  ``breaker.forced_open``, ``secret.read``, ``auth.failed``...);
* ``outcome``: ``ok``, ``allowed``, ``denied`` or ``failed``;
* the actor (``actor``: the principal's subject, ``actor_key_id``: its API key id, and
  ``tenant``: the tenant it acted for), the subject (``subject_type``, ``subject``), the
  request's correlation id (``request_id``, taken from the log context when not given)
  and action-specific fields. **Never a secret**: an API key appears by id, a secret by
  name, a token not at all.

Authentication failures can come in floods (a scanner, a misconfigured client):
:class:`AuthFailureAuditor` records at most one event per source and reason per window
and counts the rest (``suppressed``), while the metric
``agentfleet_auth_failures_total{reason}`` counts every one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter

if TYPE_CHECKING:
    from agentfleet_runtime.auth.base import Principal

__all__ = [
    "AUDIT_LOGGER",
    "AuditEvent",
    "AuditLog",
    "AuditQuery",
    "AuditSink",
    "AuditTrail",
    "AuthFailureAuditor",
    "actor_fields",
]

AUDIT_LOGGER = "agentfleet.audit"

AUTH_FAILURES = Counter(
    "agentfleet_auth_failures_total",
    "Requests refused for missing, invalid or expired credentials",
    ["reason"],
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    outcome: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def tenant(self) -> str | None:
        tenant = self.fields.get("tenant")
        return str(tenant) if tenant is not None else None

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (``fields`` flattened in)."""
        return {
            **self.fields,
            "id": self.id,
            "at": self.at.isoformat(),
            "action": self.action,
            "outcome": self.outcome,
        }

    def to_json(self) -> str:
        """How a store keeps it (:meth:`from_json` reads it back)."""
        return json.dumps(
            {
                "id": self.id,
                "at": self.at.isoformat(),
                "action": self.action,
                "outcome": self.outcome,
                "fields": self.fields,
            },
            default=str,
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> AuditEvent:
        raw = json.loads(data)
        return cls(
            action=raw["action"],
            outcome=raw["outcome"],
            fields=raw.get("fields") or {},
            at=datetime.fromisoformat(raw["at"]),
            id=raw["id"],
        )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which events to list. ``tenant``: only events of that tenant (and, with
    ``untenanted``, those of no tenant: refused credentials, secret access); ``action``:
    an exact action or a prefix ending in a dot (``api_key.``); ``since``/``until``:
    inclusive bounds on the event's time."""

    tenant: str | None = None
    untenanted: bool = False
    action: str | None = None
    outcome: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: AuditEvent) -> bool:
        others = self.tenant is not None and event.tenant != self.tenant
        if others and not (self.untenanted and event.tenant is None):
            return False
        action = self.action
        if action is not None and not (
            event.action == action or (action.endswith(".") and event.action.startswith(action))
        ):
            return False
        if self.outcome is not None and event.outcome != self.outcome:
            return False
        if self.actor is not None and event.fields.get("actor") != self.actor:
            return False
        if self.since is not None and event.at < self.since:
            return False
        return self.until is None or event.at <= self.until


AuditSink = Callable[[AuditEvent], None]

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def actor_fields(principal: Principal | None) -> dict[str, Any]:
    """The actor of an event: who (subject, API key id) and for which tenant."""
    if principal is None:
        return {}
    return {
        "actor": principal.subject,
        "actor_key_id": principal.key_id,
        "tenant": principal.tenant,
    }


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
        if "request_id" not in fields:
            request_id = structlog.contextvars.get_contextvars().get("request_id")
            if request_id is not None:
                fields["request_id"] = request_id
        event = AuditEvent(action=action, outcome=outcome, fields=fields)
        # A field named like a LogRecord attribute (``name``, ``msg``...) cannot be an
        # ``extra``: it is logged as ``audit_<field>``.
        logged = {f"audit_{k}" if k in _RESERVED else k: v for k, v in fields.items()}
        self._log.log(
            level,
            action,
            extra={"audit": True, "audit_id": event.id, "action": action, "outcome": outcome}
            | logged,
        )
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:
                self._log.exception("audit sink failed", extra={"action": action})
        return event


class AuditTrail:
    """The last ``capacity`` audit events of this process (a ring buffer): the memory
    backend's audit store, and where events wait while the shared store cannot take them.
    Lost on restart — the log stream is the durable record."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[AuditEvent] = deque(maxlen=capacity)

    def __call__(self, event: AuditEvent) -> None:
        self._events.append(event)

    def __len__(self) -> int:
        return len(self._events)

    def list(
        self, query: AuditQuery | None = None, *, limit: int | None = None
    ) -> list[AuditEvent]:
        """Newest first."""
        query = query or AuditQuery()
        found: list[AuditEvent] = []
        for event in reversed(self._events):
            if query.since is not None and event.at < query.since:
                break
            if not query.matches(event):
                continue
            found.append(event)
            if limit is not None and len(found) >= limit:
                break
        return found


class AuthFailureAuditor:
    """Audits refused credentials without flooding: one ``auth.failed`` event per
    (source, reason) per ``window_seconds``; the next one says how many were
    ``suppressed`` meanwhile. At most ``max_sources`` sources are tracked."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        window_seconds: float = 60.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audit = audit
        self._window = window_seconds
        self._max_sources = max_sources
        self._clock = clock
        #: (source, reason) → (window start, failures suppressed in it)
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def failed(self, *, source: str, reason: str, detail: str, **fields: Any) -> bool:
        """Count a failure; True when it was recorded as an event (not suppressed)."""
        AUTH_FAILURES.labels(reason).inc()
        now = self._clock()
        key = (source, reason)
        started, suppressed = self._seen.get(key, (float("-inf"), 0))
        if now - started < self._window:
            self._seen[key] = (started, suppressed + 1)
            return False
        if len(self._seen) >= self._max_sources and key not in self._seen:
            self._forget_expired(now)
        self._seen[key] = (now, 0)
        self._audit.record(
            "auth.failed",
            "denied",
            level=logging.WARNING,
            source=source,
            reason=reason,
            detail=detail,
            suppressed=suppressed,
            **fields,
        )
        return True

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (at, _) in self._seen.items() if now - at >= self._window]:
            del self._seen[key]
        while len(self._seen) >= self._max_sources:  # still full: drop the oldest
            del self._seen[next(iter(self._seen))]
