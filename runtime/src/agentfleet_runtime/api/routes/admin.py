"""``/api/v1/admin``: operating the resilience layer — circuit breakers (force open, force
closed, reset), feature flags, and what every pipeline looks like right now.

Authenticated with the admin bearer token (``AGENTFLEET_RESILIENCE__ADMIN_TOKEN``); when
none is configured the admin API refuses everyone (403). A later security issue unifies
this with the API's authentication.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict

from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.resilience import FeatureFlags, ResilienceRegistry


async def require_admin(request: Request) -> None:
    token = request.app.state.settings.resilience.admin_token
    if token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the admin API is disabled: set AGENTFLEET_RESILIENCE__ADMIN_TOKEN",
        )
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin bearer token missing or wrong",
            headers={"WWW-Authenticate": 'Bearer realm="agentfleet-admin"'},
        )


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(401, 403),
)


def _registry(request: Request) -> ResilienceRegistry:
    registry: ResilienceRegistry = request.app.state.resilience
    return registry


Registry = Annotated[ResilienceRegistry, Depends(_registry)]


class BreakerAction(StrEnum):
    FORCE_OPEN = "force-open"
    FORCE_CLOSED = "force-closed"
    RESET = "reset"


class FlagsUpdate(BaseModel):
    """Flags to change (the others keep their value)."""

    model_config = ConfigDict(extra="forbid")

    retry: bool | None = None
    circuit_breaker: bool | None = None
    rate_limit: bool | None = None
    bulkhead: bool | None = None
    timeout: bool | None = None
    retry_budget: bool | None = None
    fallback: bool | None = None
    tool_call_cap: bool | None = None
    dead_letters: bool | None = None


@router.get("/resilience", summary="Health, flags and every pipeline")
async def resilience(registry: Registry) -> dict[str, Any]:
    return {
        "health": registry.health(),
        "flags": registry.flags.model_dump(),
        "pipelines": [pipeline.snapshot() for pipeline in registry.pipelines()],
    }


@router.get("/resilience/flags", summary="Feature flags")
async def get_flags(registry: Registry) -> FeatureFlags:
    return registry.flags


@router.patch("/resilience/flags", summary="Change feature flags (no restart)")
async def patch_flags(body: FlagsUpdate, registry: Registry) -> FeatureFlags:
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    return registry.set_flags(**changes)


@router.get("/breakers", summary="Circuit breakers")
async def list_breakers(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    for breaker in registry.breakers():
        await breaker.sync()
    return {"items": [breaker.snapshot() for breaker in registry.breakers()]}


@router.get("/breakers/{name:path}", summary="A circuit breaker", responses=problem_responses(404))
async def get_breaker(name: str, registry: Registry) -> dict[str, Any]:
    breaker = registry.find_breaker(name)
    await breaker.sync()
    return breaker.snapshot()


@router.post(
    "/breakers/{name:path}/{action}",
    summary="Force a circuit breaker open or closed, or reset it",
    description="`force-open`: refuse every call; `force-closed`: let every call through "
    "uncounted; `reset`: closed, no failures, overrides cleared. Shared with every replica "
    "when breaker state is shared.",
    responses=problem_responses(404),
)
async def control_breaker(name: str, action: BreakerAction, registry: Registry) -> dict[str, Any]:
    breaker = registry.find_breaker(name)
    if action is BreakerAction.FORCE_OPEN:
        await breaker.force_open()
    elif action is BreakerAction.FORCE_CLOSED:
        await breaker.force_closed()
    else:
        await breaker.reset()
    return breaker.snapshot()
