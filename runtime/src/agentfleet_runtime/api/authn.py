"""Authentication of REST requests: ``Authorization: Bearer <token>`` checked by the
app's :class:`~agentfleet_runtime.auth.Authenticator` (401 problem details otherwise)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from agentfleet_runtime.auth import Authenticator, Principal
from agentfleet_runtime.auth.factory import bearer


async def authenticated(request: Request) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(bearer(request.headers.get("authorization")))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]
