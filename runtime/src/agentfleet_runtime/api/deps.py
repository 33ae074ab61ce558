"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from agentfleet_runtime.agent.service import AgentService


def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.service
    return service


def ws_service(websocket: WebSocket) -> AgentService:
    service: AgentService = websocket.app.state.service
    return service


Service = Annotated[AgentService, Depends(_service)]
