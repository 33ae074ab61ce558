"""``GET /api/v1/sessions/{id}/events/stream``: a session's event stream as Server-Sent
Events, for clients that cannot use WebSocket. Resumable: send ``Last-Event-ID`` (browsers'
EventSource does so when it reconnects) or ``?after=``; every event's SSE ``id`` is its
session event id. Runs until the client disconnects; a comment every
``sse_keepalive_seconds`` keeps proxies from closing it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.api.authn import Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.state.base import SessionRecord

router = APIRouter(prefix="/sessions", tags=["sessions"])


async def _readable_session(session_id: str, service: Service, caller: Reader) -> SessionRecord:
    """A dependency: the 404 is answered before the stream starts."""
    return await service.get_session(session_id, tenant=caller.tenant)


def _admitted(request: Request) -> None:
    """A saturated replica refuses new streams: 503 ``saturated`` with ``Retry-After``."""
    request.app.state.admission.admit_stream()


@router.get(
    "/{session_id}/events/stream",
    response_class=EventSourceResponse,
    summary="Follow the session's events (SSE, resumable)",
    responses=problem_responses(404, 503),
    dependencies=[Depends(_admitted)],
)
async def follow_events(
    session_id: str,
    request: Request,
    service: Service,
    _: Annotated[SessionRecord, Depends(_readable_session)],
    after: Annotated[int, Query(ge=0, description="Only events with a larger id")] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events of the session (every turn's events as they happen), from the
    event after `after` or `Last-Event-ID`; runs until the client disconnects."""
    if last_event_id and last_event_id.strip().isdigit():
        after = max(after, int(last_event_id.strip()))
    keepalive = request.app.state.settings.realtime.sse_keepalive_seconds
    events = service.follow_events(session_id, after=after)
    queue: asyncio.Queue[TurnEvent] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        async for event in events:
            await queue.put(event)

    pumping = asyncio.create_task(pump())
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                if pumping.done():
                    pumping.result()
                yield ServerSentEvent(comment="keepalive")
                continue
            yield ServerSentEvent(data=event, event=event["type"], id=str(event["id"]))
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping
