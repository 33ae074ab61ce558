"""``/api/v1/admin``: operating the resilience layer — circuit breakers (force open, force
closed, reset), feature flags, and what every pipeline looks like right now.

Breakers and flags are shared by every tenant, so these routes need the ``admin`` scope
**of the operator tenant** (``AGENTFLEET_TENANCY__OPERATOR_TENANT``), through the API's
normal authentication. The former admin bearer token (``AGENTFLEET_RESILIENCE__ADMIN_TOKEN``)
still works when it is configured, as a deprecated alternative: responses to it carry
``Deprecation`` (RFC 9745) and ``Link: <…>; rel="deprecation"``. Every change is audited.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import authenticated, authorize
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.ratelimit import EndpointClass
from agentfleet_runtime.auth.base import ForbiddenError, Principal, Scope
from agentfleet_runtime.auth.factory import bearer
from agentfleet_runtime.resilience import FeatureFlags, ResilienceRegistry

#: RFC 9745 ``Deprecation``: the admin token is deprecated since 2026-11-01.
DEPRECATION: Final = "@1793491200"
DEPRECATION_LINK: Final = (
    '<https://agentfleet.dev/docs/resilience#admin-api>; rel="deprecation"; type="text/html"'
)
#: The principal of a request authenticated with the deprecated admin token.
ADMIN_TOKEN_SUBJECT: Final = "resilience-admin-token"

_require_admin_scope = authorize(Scope.ADMIN, EndpointClass.ADMIN)


def _legacy_token(request: Request) -> bool:
    token = request.app.state.settings.resilience.admin_token
    given = bearer(request.headers.get("authorization"))
    return (
        token is not None
        and given is not None
        and secrets.compare_digest(given.encode(), token.get_secret_value().encode())
    )


async def require_admin(request: Request, response: Response) -> Principal:
    """An admin of the operator tenant, or a caller with the deprecated admin token."""
    operator: str = request.app.state.settings.tenancy.operator_tenant
    if _legacy_token(request):
        response.headers["Deprecation"] = DEPRECATION
        response.headers["Link"] = DEPRECATION_LINK
        principal = Principal(subject=ADMIN_TOKEN_SUBJECT, scopes=["admin"], tenant=operator)
        request.state.principal = principal
        return principal
    principal = await _require_admin_scope(request, response, await authenticated(request))
    if principal.tenant != operator:
        raise ForbiddenError(
            "breakers and flags are shared by every tenant: only admins of the operator "
            f"tenant ({operator!r}) operate them"
        )
    return principal


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=problem_responses(401, 403, 429),
)

AdminCaller = Annotated[Principal, Depends(require_admin)]


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

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"retry": False, "fallback": True}]}
    )

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
async def resilience(registry: Registry, _: AdminCaller) -> dict[str, Any]:
    """The resilience layer at a glance: overall health, feature flags, and every
    pipeline (retry, breaker, rate limiter, bulkhead, timeout) with its state."""
    return {
        "health": registry.health(),
        "flags": registry.flags.model_dump(),
        "pipelines": [pipeline.snapshot() for pipeline in registry.pipelines()],
    }


@router.get("/resilience/flags", summary="Feature flags")
async def get_flags(registry: Registry, _: AdminCaller) -> FeatureFlags:
    """The resilience feature flags in force (each strategy can be switched off)."""
    return registry.flags


@router.patch("/resilience/flags", summary="Change feature flags (no restart)")
async def patch_flags(
    body: FlagsUpdate, registry: Registry, request: Request, caller: AdminCaller
) -> FeatureFlags:
    """Switch resilience strategies on or off without a restart; flags not sent keep
    their value."""
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    flags = registry.set_flags(**changes)
    audit(
        request,
        caller,
        "resilience.flags_changed",
        subject_type="flags",
        subject=",".join(sorted(changes)) or "-",
        changes=changes,
    )
    return flags


@router.get("/breakers", summary="Circuit breakers")
async def list_breakers(registry: Registry, _: AdminCaller) -> dict[str, list[dict[str, Any]]]:
    """Every circuit breaker with its state, failure count and overrides."""
    for breaker in registry.breakers():
        await breaker.sync()
    return {"items": [breaker.snapshot() for breaker in registry.breakers()]}


@router.get("/breakers/{name:path}", summary="A circuit breaker", responses=problem_responses(404))
async def get_breaker(name: str, registry: Registry, _: AdminCaller) -> dict[str, Any]:
    """One circuit breaker's state, failure count and overrides."""
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
async def control_breaker(
    name: str, action: BreakerAction, registry: Registry, request: Request, caller: AdminCaller
) -> dict[str, Any]:
    breaker = registry.find_breaker(name)
    if action is BreakerAction.FORCE_OPEN:
        await breaker.force_open()
    elif action is BreakerAction.FORCE_CLOSED:
        await breaker.force_closed()
    else:
        await breaker.reset()
    audit(request, caller, _BREAKER_ACTIONS[action], subject_type="breaker", subject=name)
    return breaker.snapshot()


_BREAKER_ACTIONS: Final = {
    BreakerAction.FORCE_OPEN: "breaker.forced_open",
    BreakerAction.FORCE_CLOSED: "breaker.forced_closed",
    BreakerAction.RESET: "breaker.reset",
}
