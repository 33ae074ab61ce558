"""``/api/v1/audit`` (admin scope): the recent audit events of the caller's tenant, from
this replica's ring buffer (see :mod:`agentfleet_runtime.audit`). Admins of the operator
tenant also see the events that belong to no tenant (refused credentials, secret access).
The durable record is the ``agentfleet.audit`` log stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate, parse_time
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.audit import AuditEvent, AuditTrail

router = APIRouter(prefix="/audit", tags=["audit"])

SORTS: Sorts[AuditEvent] = Sorts(keys={"at": lambda e: e.at}, default="-at", id_of=lambda e: e.id)


@router.get(
    "",
    summary="Recent audit events of your tenant (this replica)",
    description="Newest first, paged (`limit`, `cursor`). `action`: an exact action "
    "(`api_key.created`) or a prefix ending in a dot (`api_key.`); `since`: ISO 8601.",
    responses=problem_responses(422),
)
async def list_audit_events(
    request: Request,
    response: Response,
    caller: Admin,
    page: PageQuery,
    action: Annotated[str | None, Query(max_length=100, description="Action or prefix.")] = None,
    since: Annotated[str | None, Query(description="Only events at or after this time")] = None,
) -> Page[dict[str, Any]]:
    trail: AuditTrail = request.app.state.audit_trail
    operator = caller.tenant == request.app.state.settings.tenancy.operator_tenant
    events = trail.list(
        tenant=caller.tenant,
        untenanted=operator,
        action=action,
        since=parse_time("since", since),
    )
    return paginate(events, page, SORTS, request=request, response=response).map(AuditEvent.as_dict)
