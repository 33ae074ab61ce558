"""OIDC/JWT bearer tokens: signature checked against the identity provider's JWKS, then
issuer, audience, expiry; the tenant and scopes come from claims."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
from jwt import PyJWKClient

from agentfleet_runtime.auth.base import (
    DEFAULT_TENANT,
    AuthenticationError,
    Principal,
    TokenExpiredError,
)
from agentfleet_runtime.auth.settings import JwtSettings


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class JwtAuthenticator:
    required = True

    def __init__(self, settings: JwtSettings) -> None:
        if not settings.jwks_url or not settings.issuer or not settings.audience:
            raise ValueError(
                "JWT authentication needs AGENTFLEET_AUTH__JWT__JWKS_URL, __ISSUER and __AUDIENCE"
            )
        self._settings = settings
        # Keys are cached; an unknown ``kid`` refetches the set (key rotation at the IdP).
        self._jwks = PyJWKClient(
            settings.jwks_url, cache_keys=True, lifespan=settings.jwks_cache_seconds, timeout=5
        )

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError("a bearer token is required")
        s = self._settings
        try:
            # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpiredError("the token has expired") from exc
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError("the identity provider's keys are unavailable") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}") from exc
        raw_scopes = claims.get(s.scopes_claim, "")
        scopes = raw_scopes.split() if isinstance(raw_scopes, str) else list(raw_scopes)
        tenant = claims.get(s.tenant_claim) or s.default_tenant
        if not tenant:
            raise AuthenticationError(f"the token has no {s.tenant_claim!r} claim")
        return Principal(
            subject=str(claims["sub"]),
            scopes=[str(x) for x in scopes],
            expires_at=float(claims["exp"]),
            tenant=str(tenant),
        )


__all__ = ["DEFAULT_TENANT", "JwtAuthenticator", "looks_like_jwt"]
