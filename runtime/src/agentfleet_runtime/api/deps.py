"""FastAPI dependencies as ``Annotated`` aliases. They are ``async``: FastAPI runs a
sync dependency in a thread pool, a thread hop per request for nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.state.base import SessionStatus
from agentfleet_runtime.tenants import TenantQuotaExceededError, TenantQuotas


async def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.service
    return service


async def ws_service(websocket: WebSocket) -> AgentService:
    service: AgentService = websocket.app.state.service
    return service


Service = Annotated[AgentService, Depends(_service)]


async def check_quota(request: Request, service: AgentService, tenant: str, quota: str) -> None:
    """Refuse (429 ``quota-exceeded``) when ``tenant`` has used up ``quota``
    (``max_sessions`` or ``max_concurrent_turns``): its own quota, else the default."""
    record = await request.app.state.state_backend.tenants.get(tenant)
    defaults: TenantQuotas = request.app.state.settings.tenancy.default_quotas
    limit = getattr(record.quotas, quota) if record is not None else None
    if limit is None:
        limit = getattr(defaults, quota)
    if limit is None:
        return
    sessions = await service.list_sessions(tenant=tenant)
    if quota == "max_concurrent_turns":
        used = sum(1 for s in sessions if s.status is SessionStatus.RUNNING)
    else:
        used = len(sessions)
    if used >= limit:
        raise TenantQuotaExceededError(
            f"tenant {tenant!r} has reached its {quota} quota ({limit})",
            quota=quota,
            limit=limit,
            used=used,
        )
