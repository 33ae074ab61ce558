"""Recording audit events from routes: the actor is the request's principal, the
correlation id the request's (see :mod:`agentfleet_runtime.audit`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from agentfleet_runtime.audit import AuditEvent, AuditLog, actor_fields
from agentfleet_runtime.auth.base import Principal


def audit_log(connection: HTTPConnection) -> AuditLog:
    log: AuditLog = connection.app.state.audit
    return log


def audit(
    connection: HTTPConnection,
    principal: Principal | None,
    action: str,
    *,
    subject_type: str,
    subject: str,
    outcome: str = "ok",
    **fields: Any,
) -> AuditEvent:
    """Record ``action`` on ``subject`` by ``principal`` (never pass a secret in ``fields``)."""
    request_id = connection.scope.get("state", {}).get("request_id")
    return audit_log(connection).record(
        action,
        outcome,
        **actor_fields(principal),
        subject_type=subject_type,
        subject=subject,
        request_id=request_id,
        **fields,
    )
