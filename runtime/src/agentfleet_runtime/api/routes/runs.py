"""``/api/v1/runs`` and ``/api/v1/sessions/{id}/runs``: each turn's record — status,
steps, tool calls, tokens, model, timing, error (see :mod:`agentfleet_runtime.state.runs`).
Read scope; a tenant sees its own runs only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from agentfleet_runtime.api.authn import Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate, parse_time
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.state.runs import RunFilter, RunRecord, RunStatus

router = APIRouter(tags=["runs"])

SORTS: Sorts[RunRecord] = Sorts(
    keys={
        "created_at": lambda r: r.created_at,
        "duration_ms": lambda r: r.duration_ms or 0.0,
        "steps": lambda r: r.steps,
    },
    default="-created_at",
    id_of=lambda r: r.id,
)

_SORT_HELP = (
    "Paged (`limit`, `cursor`); `sort`: `created_at` (default `-created_at`, newest "
    "first), `duration_ms`, `steps`, `-` for descending."
)

Agent = Annotated[str | None, Query(description="Only this agent's runs")]
Status = Annotated[RunStatus | None, Query(description="Only runs in this status")]
CreatedAfter = Annotated[
    str | None, Query(description="Only runs created at or after this time (ISO 8601)")
]
CreatedBefore = Annotated[
    str | None, Query(description="Only runs created before this time (ISO 8601)")
]


@router.get(
    "/runs", summary="List runs (turns)", description=_SORT_HELP, responses=problem_responses(422)
)
async def list_runs(
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: PageQuery,
    agent: Agent = None,
    session_id: Annotated[str | None, Query(description="Only this session's runs")] = None,
    status: Status = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> Page[RunRecord]:
    where = RunFilter(
        tenant=caller.tenant,
        session_id=session_id,
        agent=agent,
        status=status,
        created_after=parse_time("created_after", created_after),
        created_before=parse_time("created_before", created_before),
    )
    runs = await service.runs.list(where)
    return paginate(runs, page, SORTS, request=request, response=response)


@router.get("/runs/{run_id}", summary="Get a run", responses=problem_responses(404))
async def get_run(run_id: str, service: Service, caller: Reader) -> RunRecord:
    """One turn's record: status, steps, tool calls, token usage and latency."""
    return await service.runs.get(run_id, tenant=caller.tenant)


@router.get(
    "/sessions/{session_id}/runs",
    summary="The session's runs",
    description=_SORT_HELP,
    responses=problem_responses(404, 422),
)
async def list_session_runs(
    session_id: str,
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: PageQuery,
    status: Status = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> Page[RunRecord]:
    await service.get_session(session_id, tenant=caller.tenant)
    where = RunFilter(
        tenant=caller.tenant,
        session_id=session_id,
        status=status,
        created_after=parse_time("created_after", created_after),
        created_before=parse_time("created_before", created_before),
    )
    runs = await service.runs.list(where)
    return paginate(runs, page, SORTS, request=request, response=response)
