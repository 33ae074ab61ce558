"""FastAPI dependencies as ``Annotated`` aliases. They are ``async``: FastAPI runs a
sync dependency in a thread pool, a thread hop per request for nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.tenants import QuotaName, TenantQuotaGuard


async def _service(request: Request) -> AgentService:
    service: AgentService = request.app.state.service
    return service


async def ws_service(websocket: WebSocket) -> AgentService:
    service: AgentService = websocket.app.state.service
    return service


Service = Annotated[AgentService, Depends(_service)]


def quota_guard(request: Request) -> TenantQuotaGuard:
    """The app's :class:`TenantQuotaGuard` (set once the state backend is open)."""
    guard: TenantQuotaGuard = request.app.state.quotas
    return guard


async def check_quota(
    request: Request, service: AgentService, tenant: str, quota: QuotaName
) -> None:
    """Refuse (429 ``quota-exceeded``) when ``tenant`` has used up ``quota``: its own
    quota, else the default. ``tokens_per_day`` today's tokens; ``max_concurrent_turns``
    the turn slots held; ``max_sessions`` its sessions. Pre-checks, answered before a
    stream starts: the atomic ones are :meth:`AgentService.submit_turn`'s (a turn slot)
    and :meth:`AgentService.create_session`'s."""
    guard = quota_guard(request)
    if quota == "tokens_per_day":
        await guard.check_tokens(tenant)
        return
    if quota == "requests_per_minute":
        raise ValueError("requests_per_minute is the rate limiter's (api/ratelimit.py)")
    if await guard.limit(tenant, quota) is None:
        return
    if quota == "max_concurrent_turns":
        used = await guard.turns_running(tenant)
    else:
        used = len(await service.list_sessions(tenant=tenant))
    await guard.check(tenant, quota, used)


async def check_turn_quotas(request: Request, service: AgentService, tenant: str) -> None:
    """What a new turn needs: a free concurrent-turn slot and tokens left today."""
    await check_quota(request, service, tenant, "tokens_per_day")
    await check_quota(request, service, tenant, "max_concurrent_turns")
