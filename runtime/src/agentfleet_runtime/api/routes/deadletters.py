"""``/api/v1/deadletters``: turns that failed permanently — list, inspect, replay (the
same input as a new turn of the same session), discard (kept, marked) or delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from agentfleet_runtime.api.authn import Admin, Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import ItemList
from agentfleet_runtime.deadletters import DeadLetter, DeadLetterStatus, DeadLetterStore
from agentfleet_runtime.errors import ConflictError, NotFoundError
from agentfleet_runtime.state.base import utcnow

router = APIRouter(prefix="/deadletters", tags=["dead letters"])


def _store(request: Request) -> DeadLetterStore:
    recorder = request.app.state.dead_letters
    store: DeadLetterStore = recorder.store
    return store


async def _letter(request: Request, letter_id: str, tenant: str) -> DeadLetter:
    letter = await _store(request).get(letter_id)
    if letter is None or letter.tenant != tenant:
        raise NotFoundError(f"dead letter {letter_id!r} does not exist", dead_letter=letter_id)
    return letter


@router.get("", summary="List dead letters (newest first)")
async def list_dead_letters(
    request: Request,
    caller: Reader,
    agent: str | None = None,
    status_: Annotated[DeadLetterStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ItemList[DeadLetter]:
    # The store is not indexed by tenant: read a wider window, keep the caller's.
    letters = await _store(request).list(agent=agent, status=status_, limit=max(limit, 1000))
    return ItemList(items=[x for x in letters if x.tenant == caller.tenant][:limit])


@router.get("/{letter_id}", summary="Get a dead letter", responses=problem_responses(404))
async def get_dead_letter(request: Request, letter_id: str, caller: Reader) -> DeadLetter:
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
    request: Request, letter_id: str, service: Service, caller: Admin
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
    return letter


@router.post(
    "/{letter_id}/discard",
    summary="Discard a dead letter (kept, marked discarded)",
    responses=problem_responses(404),
)
async def discard_dead_letter(request: Request, letter_id: str, caller: Admin) -> DeadLetter:
    letter = await _letter(request, letter_id, caller.tenant)
    letter.status = DeadLetterStatus.DISCARDED
    letter.updated_at = utcnow()
    await _store(request).put(letter)
    return letter


@router.delete(
    "/{letter_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a dead letter",
    responses=problem_responses(404),
)
async def delete_dead_letter(request: Request, letter_id: str, caller: Admin) -> None:
    await _letter(request, letter_id, caller.tenant)
    await _store(request).delete(letter_id)


def _consume(task: asyncio.Task[object]) -> None:
    """A replayed turn reports its outcome as events (and maybe a new dead letter)."""
    if not task.cancelled():
        task.exception()
