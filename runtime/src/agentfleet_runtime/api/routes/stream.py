"""WebSockets: ``/api/v1/ws`` (several sessions per connection) and the per-session
``/api/v1/sessions/{id}/ws?after=N``. The protocol (frames, close codes) is defined once in
:mod:`agentfleet.protocol`; :mod:`agentfleet_runtime.realtime.connection` runs it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, WebSocket

from agentfleet.protocol import CloseCode
from agentfleet_runtime.realtime.connection import CLOSE_NOT_FOUND, Connection

router = APIRouter(tags=["realtime"])

__all__ = ["CLOSE_NOT_FOUND", "router"]


def _connection(websocket: WebSocket, **options: object) -> Connection:
    state = websocket.app.state
    return Connection(
        websocket,
        hub=state.connections,
        service=state.service,
        authenticator=state.authenticator,
        settings=state.settings.realtime,
        replica=state.replica,
        admission=state.admission,
        **options,  # type: ignore[arg-type]
    )


async def _refuse_if_draining(websocket: WebSocket) -> bool:
    """Draining: close 1012 (reconnect elsewhere). Saturated: close 1013 with a
    ``retry-after=N`` hint, before spending anything on authentication (a tenant's
    ``max_websockets`` quota is checked once the connection is authenticated)."""
    state = websocket.app.state
    if state.shutting_down:
        await websocket.accept()
        await websocket.close(CloseCode.SERVICE_RESTART, "server shutting down: reconnect")
        return True
    refusal = state.admission.check()
    if refusal is not None:
        await websocket.accept()
        await websocket.close(refusal.code, refusal.close_reason)
        return True
    return False


@router.websocket("/ws")
async def realtime_socket(websocket: WebSocket) -> None:
    """Subscribe to sessions, send messages, receive their events (see the protocol)."""
    if await _refuse_if_draining(websocket):
        return
    await _connection(websocket).run()


@router.websocket("/sessions/{session_id}/ws")
async def session_socket(
    websocket: WebSocket,
    session_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
) -> None:
    """One session: its events after ``after``, and messages to it."""
    if await _refuse_if_draining(websocket):
        return
    await _connection(websocket, default_session=session_id, greet=False).run(after=after)
