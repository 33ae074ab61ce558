"""The authentication port."""

from __future__ import annotations

import time
from enum import StrEnum
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


class Scope(StrEnum):
    """What a credential may do. Each scope includes the ones below it:
    ``admin`` ⊇ ``agent-invoke`` ⊇ ``read``; ``*`` is ``admin``."""

    READ = "read"
    INVOKE = "agent-invoke"
    ADMIN = "admin"


_RANK = {Scope.READ: 1, Scope.INVOKE: 2, Scope.ADMIN: 3, "*": 3}

#: The tenant of callers that do not name one (development, static tokens by default).
DEFAULT_TENANT = "default"


class Principal(BaseModel):
    """An authenticated caller."""

    subject: str
    #: Scopes the credential grants (``*`` is everything).
    scopes: list[str] = Field(default_factory=lambda: ["*"])
    #: When the credentials stop being valid (Unix time), if they do.
    expires_at: float | None = None
    #: The tenant whose data the caller sees (and nothing else).
    tenant: str = DEFAULT_TENANT
    #: The API key's id when the caller used one (rate limits are per key).
    key_id: str | None = None

    def allows(self, scope: Scope) -> bool:
        """True when one of the granted scopes includes ``scope``."""
        return max((_RANK.get(s, 0) for s in self.scopes), default=0) >= _RANK[scope]

    def require(self, scope: Scope) -> None:
        if not self.allows(scope):
            raise ForbiddenError(
                f"this needs the {scope.value!r} scope; the credential grants "
                f"{', '.join(self.scopes) or 'none'}",
                required_scope=scope.value,
            )

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
