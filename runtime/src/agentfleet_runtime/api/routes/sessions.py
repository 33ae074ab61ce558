"""``/api/v1/sessions`` and a session's messages, events and streamed turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agentfleet_runtime.agent.service import TurnResult
from agentfleet_runtime.api.authn import Invoker, Reader
from agentfleet_runtime.api.deps import Service, check_quota
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import (
    EventList,
    ItemList,
    MessageCreate,
    MessageList,
    SessionCreate,
    SessionPublic,
)
from agentfleet_runtime.state.base import SessionRecord

router = APIRouter(prefix="/sessions", tags=["sessions"])


async def _startable_session(
    session_id: str, service: Service, caller: Invoker, request: Request
) -> SessionRecord:
    """A dependency, so that a 404/429 is answered before an SSE stream starts (the body
    of a streaming route runs only once the response has begun)."""
    record = await service.get_session(session_id, tenant=caller.tenant)
    await check_quota(request, service, caller.tenant, "max_concurrent_turns")
    return record


def _public(record: SessionRecord) -> SessionPublic:
    return SessionPublic.model_validate(record.model_dump())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a session with an agent",
    responses=problem_responses(404, 422, 429),
)
async def create_session(
    body: SessionCreate, service: Service, caller: Invoker, request: Request
) -> SessionPublic:
    await check_quota(request, service, caller.tenant, "max_sessions")
    record = await service.create_session(
        body.agent, title=body.title, metadata=body.metadata, tenant=caller.tenant
    )
    return _public(record)


@router.get("", summary="List sessions")
async def list_sessions(
    service: Service,
    caller: Reader,
    agent: Annotated[str | None, Query(description="Only this agent's sessions")] = None,
) -> ItemList[SessionPublic]:
    return ItemList(
        items=[_public(r) for r in await service.list_sessions(agent=agent, tenant=caller.tenant)]
    )


@router.get("/{session_id}", summary="Get a session", responses=problem_responses(404))
async def get_session(session_id: str, service: Service, caller: Reader) -> SessionPublic:
    return _public(await service.get_session(session_id, tenant=caller.tenant))


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a session, its messages and events",
    responses=problem_responses(404),
)
async def delete_session(session_id: str, service: Service, caller: Invoker) -> None:
    await service.get_session(session_id, tenant=caller.tenant)
    await service.delete_session(session_id)


@router.get(
    "/{session_id}/messages",
    summary="The session's conversation",
    responses=problem_responses(404),
)
async def list_messages(session_id: str, service: Service, caller: Reader) -> MessageList:
    await service.get_session(session_id, tenant=caller.tenant)
    return MessageList(items=await service.messages(session_id))


@router.post(
    "/{session_id}/messages",
    summary="Send a message and wait for the agent's answer",
    description="Runs one turn: the model, the tools it asks for, until it answers. Returns "
    "the answer and every tool call made on the way.",
    responses=problem_responses(404, 422, 429, 502, 503, 504),
)
async def post_message(
    session_id: str,
    body: MessageCreate,
    service: Service,
    caller: Invoker,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Retry with the same key: the turn runs once, the answer is the same.",
        ),
    ] = None,
) -> TurnResult:
    await service.get_session(session_id, tenant=caller.tenant)
    await check_quota(request, service, caller.tenant, "max_concurrent_turns")
    return await service.run_turn(session_id, body.content, idempotency_key=idempotency_key)


@router.post(
    "/{session_id}/messages/stream",
    response_class=EventSourceResponse,
    summary="Send a message and stream the turn's events (SSE)",
    description="Server-sent events, one per turn event: `turn.started`, `model.delta` "
    "(tokens), `model.message`, `tool.call`, `tool.result`, then `turn.completed` or "
    "`turn.failed`. Each event's `id` is the session event id (for resuming).",
    responses=problem_responses(404, 422),
)
async def stream_message(
    session_id: str,
    body: MessageCreate,
    service: Service,
    _: Annotated[SessionRecord, Depends(_startable_session)],
) -> AsyncIterator[ServerSentEvent]:
    async for event in service.stream_turn(session_id, body.content):
        yield ServerSentEvent(data=event, event=event["type"], id=str(event["id"]))


@router.get(
    "/{session_id}/events",
    summary="The session's recorded events after an event id",
    responses=problem_responses(404),
)
async def list_events(
    session_id: str,
    service: Service,
    caller: Reader,
    after: Annotated[int, Query(ge=0, description="Only events with a larger id")] = 0,
) -> EventList:
    await service.get_session(session_id, tenant=caller.tenant)
    return EventList(items=await service.events(session_id, after=after))
