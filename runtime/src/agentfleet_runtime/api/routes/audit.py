"""``/api/v1/audit`` (admin scope): the recent audit events of the caller's tenant, from
the state backend's audit store — every replica's on Redis, this process's on memory —
plus this replica's events not written there yet (see
:mod:`agentfleet_runtime.state.audit_store`). Admins of the operator tenant also see the
events that belong to no tenant (refused credentials, secret access). The durable record
is the ``agentfleet.audit`` log stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate, parse_time
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.audit import AuditEvent, AuditQuery
from agentfleet_runtime.state.audit_store import AuditWriter

router = APIRouter(prefix="/audit", tags=["audit"])

SORTS: Sorts[AuditEvent] = Sorts(keys={"at": lambda e: e.at}, default="-at", id_of=lambda e: e.id)


@router.get(
    "",
    summary="Recent audit events of your tenant (every replica)",
    description="Newest first, paged (`limit`, `cursor`). `action`: an exact action "
    "(`api_key.created`) or a prefix ending in a dot (`api_key.`); `outcome`, `actor`: "
    "exact; `since`, `until`: ISO 8601, inclusive.",
    responses=problem_responses(422, 502, 504),
)
async def list_audit_events(
    request: Request,
    response: Response,
    caller: Admin,
    page: PageQuery,
    action: Annotated[str | None, Query(max_length=100, description="Action or prefix.")] = None,
    outcome: Annotated[
        str | None, Query(max_length=20, description="`ok`, `allowed`, `denied`, `failed`.")
    ] = None,
    actor: Annotated[str | None, Query(max_length=200, description="The actor's subject.")] = None,
    since: Annotated[str | None, Query(description="Only events at or after this time")] = None,
    until: Annotated[str | None, Query(description="Only events at or before this time")] = None,
) -> Page[dict[str, Any]]:
    writer: AuditWriter = request.app.state.audit_writer
    operator = caller.tenant == request.app.state.settings.tenancy.operator_tenant
    query = AuditQuery(
        tenant=caller.tenant,
        untenanted=operator,
        action=action,
        outcome=outcome,
        actor=actor,
        since=parse_time("since", since),
        until=parse_time("until", until),
    )
    events = await writer.list(query)
    return paginate(events, page, SORTS, request=request, response=response).map(AuditEvent.as_dict)
