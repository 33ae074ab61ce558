"""FastAPI dependencies as ``Annotated`` aliases. They are ``async``: FastAPI runs a
sync dependency in a thread pool, a thread hop per request for nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from agentfleet_runtime.agent.service import AgentService


async def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.service
    return service


async def ws_service(websocket: WebSocket) -> AgentService:
    service: AgentService = websocket.app.state.service
    return service


Service = Annotated[AgentService, Depends(_service)]
