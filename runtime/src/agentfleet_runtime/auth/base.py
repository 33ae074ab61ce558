"""The authentication port."""

from __future__ import annotations

import time
from typing import Protocol

from pydantic import BaseModel, Field

from agentfleet_runtime.errors import AgentfleetError


class AuthenticationError(AgentfleetError):
    """No credentials, or credentials that are not valid (HTTP 401, WebSocket 4401)."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class TokenExpiredError(AuthenticationError):
    """The token was valid and has expired: get a new one (WebSocket 4402)."""

    slug = "token-expired"
    title = "Token expired"


class ForbiddenError(AgentfleetError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class Principal(BaseModel):
    """An authenticated caller."""

    subject: str
    #: Scopes the token grants (``*`` is everything). Checked by later authorization work.
    scopes: list[str] = Field(default_factory=lambda: ["*"])
    #: When the credentials stop being valid (Unix time), if they do.
    expires_at: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (now or time.time())


#: The caller when authentication is off (development).
ANONYMOUS = Principal(subject="anonymous")


class Authenticator(Protocol):
    """Turns a bearer token into a :class:`Principal` or raises
    :class:`AuthenticationError` (:class:`TokenExpiredError` for an expired one)."""

    @property
    def required(self) -> bool:
        """False when authentication is off: every caller is :data:`ANONYMOUS`."""
        ...

    async def authenticate(self, token: str | None) -> Principal: ...
