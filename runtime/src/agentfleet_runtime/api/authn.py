"""Authentication and authorization of REST requests.

``Authorization: Bearer <token>`` (or ``X-API-Key: <key>``) is checked by the app's
:class:`~agentfleet_runtime.auth.Authenticator` (401 problem details otherwise); every
route then requires a scope (``read``, ``agent-invoke`` or ``admin``: 403 otherwise) and
draws from the caller's and tenant's rate-limit buckets (429). Routes take the caller as
one of :data:`Reader`, :data:`Invoker`, :data:`Admin`; its ``tenant`` scopes every lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Response

from agentfleet_runtime.api.ratelimit import ApiRateLimiter, EndpointClass
from agentfleet_runtime.audit import AuthFailureAuditor
from agentfleet_runtime.auth import Authenticator, Principal, Scope
from agentfleet_runtime.auth.base import AuthenticationError
from agentfleet_runtime.auth.factory import bearer

API_KEY_HEADER = "x-api-key"


def credentials(authorization: str | None, api_key: str | None) -> str | None:
    return bearer(authorization) or (api_key.strip() if api_key and api_key.strip() else None)


async def authenticated(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    token = credentials(request.headers.get("authorization"), request.headers.get(API_KEY_HEADER))
    try:
        principal = await authenticator.authenticate(token)
    except AuthenticationError as exc:
        auditor: AuthFailureAuditor | None = getattr(request.app.state, "auth_failures", None)
        if auditor is not None:  # audited, without flooding the log
            auditor.failed(
                source=request.client.host if request.client else "unknown",
                reason=exc.slug,
                detail=exc.detail,
                path=request.url.path,
                request_id=request.scope.get("state", {}).get("request_id"),
            )
        raise
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]


def authorize(
    scope: Scope, endpoint: EndpointClass
) -> Callable[[Request, Response, Principal], Awaitable[Principal]]:
    async def dependency(
        request: Request, response: Response, principal: CurrentPrincipal
    ) -> Principal:
        principal.require(scope)
        limiter: ApiRateLimiter | None = getattr(request.app.state, "api_limits", None)
        if limiter is not None:
            await limiter.check(principal, endpoint, response)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(authorize(Scope.READ, EndpointClass.READ))]
Invoker = Annotated[Principal, Depends(authorize(Scope.INVOKE, EndpointClass.INVOKE))]
Admin = Annotated[Principal, Depends(authorize(Scope.ADMIN, EndpointClass.ADMIN))]
