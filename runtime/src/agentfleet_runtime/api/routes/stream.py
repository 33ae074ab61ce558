"""``/api/v1/sessions/{id}/ws``: a session over WebSocket.

Server → client: ``{"type": "event", "event": TurnEvent}`` for every session event after
``?after=<last event id>`` (missed ones first, then live), ``{"type": "ack", ...}`` when a
message was accepted, ``{"type": "pong"}``, ``{"type": "error", ...}``.
Client → server: ``{"type": "message", "content": "..."}``, ``{"type": "ping"}``.
Close codes: 4404 unknown session, 4400 malformed frame, 1011 internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.deps import ws_service
from agentfleet_runtime.api.schemas import MessageCreate
from agentfleet_runtime.errors import AgentfleetError

router = APIRouter(prefix="/sessions", tags=["sessions"])

CLOSE_NOT_FOUND = 4404
CLOSE_BAD_FRAME = 4400


@router.websocket("/{session_id}/ws")
async def session_socket(
    websocket: WebSocket,
    session_id: str,
    service: Annotated[AgentService, Depends(ws_service)],
    after: Annotated[int, Query(ge=0)] = 0,
) -> None:
    await websocket.accept()
    try:
        await service.get_session(session_id)
    except AgentfleetError as exc:
        await websocket.close(code=CLOSE_NOT_FOUND, reason=exc.detail[:120])
        return

    async def forward_events() -> None:
        async for event in service.follow_events(session_id, after=after):
            await websocket.send_json({"type": "event", "event": event})

    forwarder = asyncio.create_task(forward_events())
    try:
        while True:
            frame = await websocket.receive_text()
            reply = await _handle_frame(service, session_id, frame)
            await websocket.send_json(reply)
            if reply["type"] == "error" and reply.get("fatal"):
                await websocket.close(code=CLOSE_BAD_FRAME, reason=reply["detail"][:120])
                return
    except WebSocketDisconnect:
        pass
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarder


async def _handle_frame(service: AgentService, session_id: str, frame: str) -> dict[str, Any]:
    try:
        payload = json.loads(frame)
    except json.JSONDecodeError:
        return {"type": "error", "detail": "frames must be JSON objects", "fatal": True}
    kind = payload.get("type") if isinstance(payload, dict) else None
    if kind == "ping":
        return {"type": "pong"}
    if kind != "message":
        return {"type": "error", "detail": f"unknown frame type {kind!r}", "fatal": False}
    try:
        body = MessageCreate.model_validate({"content": payload.get("content")})
    except ValidationError as exc:
        return {"type": "error", "detail": str(exc.errors()[0]["msg"]), "fatal": False}
    try:
        task = await service.start_turn(session_id, body.content)
    except AgentfleetError as exc:
        return {"type": "error", "detail": exc.detail, "fatal": False}
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
    return {"type": "ack", "turn_id": task.get_name().removeprefix("turn ")}
