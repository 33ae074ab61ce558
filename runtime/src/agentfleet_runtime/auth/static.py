"""Static bearer tokens from the settings."""

from __future__ import annotations

import hmac

from agentfleet_runtime.auth.base import (
    ANONYMOUS,
    AuthenticationError,
    Principal,
    TokenExpiredError,
)
from agentfleet_runtime.auth.settings import StaticToken


class NoAuthenticator:
    """Authentication off: everyone is ``anonymous`` (development only)."""

    required = False

    async def authenticate(self, token: str | None) -> Principal:
        return ANONYMOUS


class StaticTokenAuthenticator:
    required = True

    def __init__(self, tokens: list[StaticToken]) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), t) for t in tokens]

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError("a bearer token is required")
        given = token.encode()
        for secret, entry in self._tokens:
            if hmac.compare_digest(secret, given):  # constant time: no timing oracle
                principal = Principal(
                    subject=entry.subject,
                    scopes=list(entry.scopes),
                    expires_at=entry.expires_at.timestamp() if entry.expires_at else None,
                    tenant=entry.tenant,
                )
                if principal.expired():
                    raise TokenExpiredError("the token has expired")
                return principal
        raise AuthenticationError("the token is not valid")
