"""``/api/v1/sessions`` (create, list, get, patch, delete) and a session's messages, events
and streamed turns; bulk create/delete of sessions and the import of messages into a
session's history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.agent.service import AgentService, TurnResult
from agentfleet_runtime.api.authn import Invoker, Reader
from agentfleet_runtime.api.bulk import MAX_BATCH, BulkResult, run_bulk
from agentfleet_runtime.api.deps import Service, check_turn_quotas
from agentfleet_runtime.api.idempotency import IdempotencyKey, idempotent
from agentfleet_runtime.api.pagination import (
    MAX_LIMIT,
    Page,
    PageParams,
    PageQuery,
    Sorts,
    as_utc,
    page_query,
    paginate,
)
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import (
    MessageCreate,
    SessionCreate,
    SessionPublic,
    SessionUpdate,
)
from agentfleet_runtime.artifacts.attachments import message_with_attachments
from agentfleet_runtime.auth.base import Principal
from agentfleet_runtime.messages import Message
from agentfleet_runtime.state.base import SessionRecord, SessionStatus

router = APIRouter(prefix="/sessions", tags=["sessions"])

SORTS: Sorts[SessionRecord] = Sorts(
    keys={
        "created_at": lambda r: r.created_at,
        "updated_at": lambda r: r.updated_at,
        "agent": lambda r: r.agent,
        "turns": lambda r: r.turns,
    },
    default="created_at",
    id_of=lambda r: r.id,
)
#: A conversation or event log reads whole unless ``limit`` is given (as before paging).
WholeListQuery = Annotated[PageParams, Depends(page_query(default=None, maximum=MAX_LIMIT))]
MESSAGE_SORTS: Sorts[tuple[int, Message]] = Sorts(
    keys={"position": lambda m: m[0]}, default="position", id_of=lambda m: f"{m[0]:012d}"
)
EVENT_SORTS: Sorts[TurnEvent] = Sorts(
    keys={"id": lambda e: e["id"]}, default="id", id_of=lambda e: f"{e['id']:012d}"
)
METADATA_FILTER = "metadata."


class SessionBulkCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": [{"agent": "demo"}, {"agent": "demo", "title": "Second"}]}]
        },
    )

    items: list[SessionCreate] = Field(min_length=1, max_length=MAX_BATCH)


class SessionBulkDelete(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ids": ["ses_0123456789abcdef0123456789abcdef"]}]},
    )

    ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=MAX_BATCH
    )


class ImportedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=100_000)]


class MessageImport(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {"role": "user", "content": "What is 2+2?"},
                        {"role": "assistant", "content": "4"},
                    ]
                }
            ]
        },
    )

    messages: list[ImportedMessage] = Field(min_length=1, max_length=MAX_BATCH)


class MessageImportResult(BaseModel):
    imported: int = Field(description="Messages appended")
    total: int = Field(description="Messages in the conversation now")


async def _startable_session(
    session_id: str, service: Service, caller: Invoker, request: Request
) -> SessionRecord:
    """A dependency, so that a 404/429 is answered before an SSE stream starts (the body
    of a streaming route runs only once the response has begun)."""
    record = await service.get_session(session_id, tenant=caller.tenant)
    await check_turn_quotas(request, service, caller.tenant)
    return record


async def _with_attachments(request: Request, tenant: str, body: MessageCreate) -> str:
    """The message's content with its attachments, as the model is to see it."""
    artifacts = getattr(request.app.state, "artifacts", None)
    return await message_with_attachments(artifacts, tenant, body.content, body.attachments)


async def _stream_content(
    body: MessageCreate,
    request: Request,
    session: Annotated[SessionRecord, Depends(_startable_session)],
) -> str:
    """A dependency, like :func:`_startable_session`: an unknown attachment is a 422
    answered before the SSE stream starts."""
    return await _with_attachments(request, session.tenant, body)


def _public(record: SessionRecord) -> SessionPublic:
    return SessionPublic.model_validate(record.model_dump())


async def _create(
    body: SessionCreate, service: AgentService, caller: Principal, request: Request
) -> SessionPublic:
    # max_sessions: checked atomically by create_session (under the tenant's quota lock).
    record = await service.create_session(
        body.agent, title=body.title, metadata=body.metadata, tenant=caller.tenant
    )
    return _public(record)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a session with an agent",
    responses=problem_responses(404, 409, 422, 429),
)
async def create_session(
    body: SessionCreate,
    service: Service,
    caller: Invoker,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SessionPublic:
    """Start a conversation with an agent (one of the tenant's own or a shared one). Refused
    with 429 `quota-exceeded` when the tenant has `max_sessions` sessions."""
    return await idempotent(
        request,
        response,
        caller,
        idempotency_key,
        SessionPublic,
        lambda: _create(body, service, caller, request),
    )


@router.get(
    "",
    summary="List sessions",
    description="Paged (`limit`, `cursor`); `sort`: `created_at` (default), `updated_at`, "
    "`agent`, `turns`, `-` for descending. Filters: `agent`, `status`, `created_after`, "
    "`created_before` (ISO 8601; no zone: UTC), and `metadata.<key>=<value>` (repeatable: "
    "every one must match).",
    responses=problem_responses(422),
)
async def list_sessions(
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: PageQuery,
    agent: Annotated[str | None, Query(description="Only this agent's sessions")] = None,
    status_: Annotated[
        SessionStatus | None, Query(alias="status", description="Only sessions in this state")
    ] = None,
    created_after: Annotated[
        datetime | None, Query(description="Only sessions created after this time")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="Only sessions created before this time")
    ] = None,
) -> Page[SessionPublic]:
    after, before = as_utc(created_after), as_utc(created_before)
    metadata = [
        (key.removeprefix(METADATA_FILTER), value)
        for key, value in request.query_params.multi_items()
        if key.startswith(METADATA_FILTER)
    ]
    records = [
        r
        for r in await service.list_sessions(agent=agent, tenant=caller.tenant)
        if (status_ is None or r.status is status_)
        and (after is None or r.created_at > after)
        and (before is None or r.created_at < before)
        and all(r.metadata.get(key) == value for key, value in metadata)
    ]
    return paginate(records, page, SORTS, request=request, response=response).map(_public)


@router.post(
    "/bulk",
    summary=f"Start many sessions (up to {MAX_BATCH}), a result per item",
    description="Each item is created as `POST /sessions` would (201 with the id, or its "
    "problem: 404 unknown agent, 429 `quota-exceeded`...); one failing does not stop the "
    "others. `Idempotency-Key` makes the whole batch run once.",
    responses=problem_responses(409, 422),
)
async def bulk_create_sessions(
    body: SessionBulkCreate,
    service: Service,
    caller: Invoker,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BulkResult:
    async def create(item: SessionCreate) -> str:
        return (await _create(item, service, caller, request)).id

    async def run() -> BulkResult:
        return await run_bulk(body.items, create, status=201, instance=request.url.path)

    return await idempotent(request, response, caller, idempotency_key, BulkResult, run)


@router.post(
    "/bulk-delete",
    summary=f"Delete many sessions (up to {MAX_BATCH}), a result per item",
    description="Each id is deleted as `DELETE /sessions/{id}` would (204 or 404).",
    responses=problem_responses(409, 422),
)
async def bulk_delete_sessions(
    body: SessionBulkDelete,
    service: Service,
    caller: Invoker,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BulkResult:
    async def delete(session_id: str) -> str:
        await service.get_session(session_id, tenant=caller.tenant)
        await service.delete_session(session_id)
        return session_id

    async def run() -> BulkResult:
        return await run_bulk(body.ids, delete, status=204, instance=request.url.path)

    return await idempotent(request, response, caller, idempotency_key, BulkResult, run)


@router.get("/{session_id}", summary="Get a session", responses=problem_responses(404))
async def get_session(session_id: str, service: Service, caller: Reader) -> SessionPublic:
    """The session's record: agent, status (`idle`/`running`), number of turns, metadata."""
    return _public(await service.get_session(session_id, tenant=caller.tenant))


@router.patch(
    "/{session_id}",
    summary="Change a session's title or metadata",
    description="A JSON merge patch (RFC 7396): absent fields stay as they are, `title: null` "
    "clears the title, a `null` metadata value removes that key (`metadata: null`: every "
    "key). Concurrent patches of different keys both land. 422 when the session would have "
    "more than 64 metadata keys.",
    responses=problem_responses(404, 422),
)
async def update_session(
    session_id: str, body: SessionUpdate, service: Service, caller: Invoker
) -> SessionPublic:
    patch = body.model_dump(include=body.model_fields_set)
    return _public(await service.update_session(session_id, patch, tenant=caller.tenant))


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a session, its messages and events",
    responses=problem_responses(404),
)
async def delete_session(session_id: str, service: Service, caller: Invoker) -> None:
    """Delete the session with its conversation, events, runs and queued messages."""
    await service.get_session(session_id, tenant=caller.tenant)
    await service.delete_session(session_id)


@router.get(
    "/{session_id}/messages",
    summary="The session's conversation",
    description="Every message, oldest first, unless `limit` is given: then paged "
    "(`cursor`); `sort`: `position` (default) or `-position` (newest first).",
    responses=problem_responses(404, 422),
)
async def list_messages(
    session_id: str,
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: WholeListQuery,
) -> Page[Message]:
    await service.get_session(session_id, tenant=caller.tenant)
    numbered = list(enumerate(await service.messages(session_id)))
    result = paginate(numbered, page, MESSAGE_SORTS, request=request, response=response)
    return result.map(lambda m: m[1])


@router.post(
    "/{session_id}/messages/import",
    summary=f"Append messages (up to {MAX_BATCH}) to the conversation without a turn",
    description="Adds `user`/`assistant` messages to the session's history (e.g. a "
    "conversation brought from elsewhere) without calling the model; the next turn sees "
    "them. 409 `session-busy` while a turn runs or is queued.",
    responses=problem_responses(404, 409, 422),
)
async def import_messages(
    session_id: str,
    body: MessageImport,
    service: Service,
    caller: Invoker,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> MessageImportResult:
    await service.get_session(session_id, tenant=caller.tenant)
    messages: list[Message] = [{"role": m.role, "content": m.content} for m in body.messages]

    async def run() -> MessageImportResult:
        total = await service.import_messages(session_id, messages)
        return MessageImportResult(imported=len(messages), total=total)

    return await idempotent(request, response, caller, idempotency_key, MessageImportResult, run)


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
    content = await _with_attachments(request, caller.tenant, body)
    # No pre-check of the quotas here (the SSE route needs one): submitting the turn checks
    # today's tokens and takes a turn slot atomically, before anything runs.
    return await service.run_turn(session_id, content, idempotency_key=idempotency_key)


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
    service: Service,
    content: Annotated[str, Depends(_stream_content)],
) -> AsyncIterator[ServerSentEvent]:
    async for event in service.stream_turn(session_id, content):
        yield ServerSentEvent(data=event, event=event["type"], id=str(event["id"]))


@router.get(
    "/{session_id}/events",
    summary="The session's recorded events after an event id",
    description="Every kept event after `after`, unless `limit` is given: then paged "
    "(`cursor`); `sort`: `id` (default) or `-id`.",
    responses=problem_responses(404, 422),
)
async def list_events(
    session_id: str,
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: WholeListQuery,
    after: Annotated[int, Query(ge=0, description="Only events with a larger id")] = 0,
) -> Page[TurnEvent]:
    await service.get_session(session_id, tenant=caller.tenant)
    events = await service.events(session_id, after=after)
    return paginate(events, page, EVENT_SORTS, request=request, response=response)
