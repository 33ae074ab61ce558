"""``/api/v1/deadletters``: turns that failed permanently — list, inspect, replay (the
same input as a new turn of the same session), discard (kept, marked) or delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Admin, Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.idempotency import IdempotencyKey, idempotent
from agentfleet_runtime.api.pagination import Page, PageParams, Sorts, page_query, paginate
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.auth.base import Principal
from agentfleet_runtime.deadletters import DeadLetter, DeadLetterStatus, DeadLetterStore
from agentfleet_runtime.errors import ConflictError, NotFoundError
from agentfleet_runtime.state.base import utcnow

router = APIRouter(prefix="/deadletters", tags=["dead letters"])

SORTS: Sorts[DeadLetter] = Sorts(
    keys={"created_at": lambda x: x.created_at, "updated_at": lambda x: x.updated_at},
    default="-created_at",
    id_of=lambda x: x.id,
)
#: Stores keep at most this many letters (``max_letters``): a list reads them all.
STORE_WINDOW = 10_000
#: 100 per page and up to 1000, as before paging (a larger ``limit`` stays valid).
LetterPageQuery = Annotated[PageParams, Depends(page_query(default=100, maximum=1000))]


def _store(request: Request) -> DeadLetterStore:
    recorder = request.app.state.dead_letters
    store: DeadLetterStore = recorder.store
    return store


async def _letter(request: Request, letter_id: str, tenant: str) -> DeadLetter:
    letter = await _store(request).get(letter_id)
    if letter is None or letter.tenant != tenant:
        raise NotFoundError(f"dead letter {letter_id!r} does not exist", dead_letter=letter_id)
    return letter


@router.get(
    "",
    summary="List dead letters (newest first)",
    description="Paged (`limit`: default 100, max 1000; `cursor`); `sort`: `-created_at` "
    "(default), `created_at`, `updated_at`, `-updated_at`. Filters: `agent`, `status`, "
    "`session_id`, `error_class` (why it failed: `timeout`, `auth`, `circuitOpen`...).",
    responses=problem_responses(422),
)
async def list_dead_letters(
    request: Request,
    response: Response,
    caller: Reader,
    page: LetterPageQuery,
    agent: str | None = None,
    status_: Annotated[DeadLetterStatus | None, Query(alias="status")] = None,
    session_id: str | None = None,
    error_class: Annotated[
        str | None, Query(description="The failure's class, e.g. `timeout`")
    ] = None,
) -> Page[DeadLetter]:
    # The store is not indexed by tenant: read its window, keep the caller's.
    letters = await _store(request).list(agent=agent, status=status_, limit=STORE_WINDOW)
    chosen = [
        x
        for x in letters
        if x.tenant == caller.tenant
        and (session_id is None or x.session_id == session_id)
        and (error_class is None or x.error_class == error_class)
    ]
    return paginate(chosen, page, SORTS, request=request, response=response)


@router.get("/{letter_id}", summary="Get a dead letter", responses=problem_responses(404))
async def get_dead_letter(request: Request, letter_id: str, caller: Reader) -> DeadLetter:
    """A turn that failed for good: its message, the error, and what happened since."""
    return await _letter(request, letter_id, caller.tenant)


@router.post(
    "/{letter_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Replay a dead letter",
    description="Runs the dead letter's input again as a new turn of its session; the "
    "letter is marked `replayed` with the new turn's id (follow it with the session's "
    "events). Only `pending` letters can be replayed.",
    responses=problem_responses(404, 409),
)
async def replay_dead_letter(
    request: Request,
    response: Response,
    letter_id: str,
    service: Service,
    caller: Admin,
    idempotency_key: IdempotencyKey = None,
) -> DeadLetter:
    return await idempotent(
        request,
        response,
        caller,
        idempotency_key,
        DeadLetter,
        lambda: _replay(request, letter_id, service, caller),
    )


async def _replay(
    request: Request, letter_id: str, service: AgentService, caller: Principal
) -> DeadLetter:
    store = _store(request)
    letter = await _letter(request, letter_id, caller.tenant)
    if letter.status is not DeadLetterStatus.PENDING:
        raise ConflictError(
            f"dead letter {letter_id!r} is {letter.status.value}; only pending letters replay",
            dead_letter=letter_id,
        )
    task = await service.start_turn(letter.session_id, letter.content)
    task.add_done_callback(_consume)
    letter.status = DeadLetterStatus.REPLAYED
    letter.replay_turn_id = task.get_name().removeprefix("turn ")
    letter.updated_at = utcnow()
    await store.put(letter)
    audit(
        request,
        caller,
        "dead_letter.replayed",
        subject_type="dead_letter",
        subject=letter_id,
        session_id=letter.session_id,
        turn_id=letter.replay_turn_id,
    )
    return letter


@router.post(
    "/{letter_id}/discard",
    summary="Discard a dead letter (kept, marked discarded)",
    responses=problem_responses(404),
)
async def discard_dead_letter(request: Request, letter_id: str, caller: Admin) -> DeadLetter:
    """Mark a dead letter as handled without replaying it; it stays listed as
    `discarded`."""
    letter = await _letter(request, letter_id, caller.tenant)
    letter.status = DeadLetterStatus.DISCARDED
    letter.updated_at = utcnow()
    await _store(request).put(letter)
    audit(request, caller, "dead_letter.discarded", subject_type="dead_letter", subject=letter_id)
    return letter


@router.delete(
    "/{letter_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a dead letter",
    responses=problem_responses(404),
)
async def delete_dead_letter(request: Request, letter_id: str, caller: Admin) -> None:
    """Forget a dead letter for good (`discard` keeps it, marked)."""
    await _letter(request, letter_id, caller.tenant)
    await _store(request).delete(letter_id)
    audit(request, caller, "dead_letter.deleted", subject_type="dead_letter", subject=letter_id)


def _consume(task: asyncio.Task[object]) -> None:
    """A replayed turn reports its outcome as events (and maybe a new dead letter)."""
    if not task.cancelled():
        task.exception()
