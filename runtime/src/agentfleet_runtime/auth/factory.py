"""The authenticator the settings ask for."""

from __future__ import annotations

from agentfleet_runtime.auth.apikeys import ApiKeyAuthenticator, ApiKeyStore, looks_like_api_key
from agentfleet_runtime.auth.base import AuthenticationError, Authenticator, Principal
from agentfleet_runtime.auth.jwt import JwtAuthenticator, looks_like_jwt
from agentfleet_runtime.auth.settings import AuthSettings
from agentfleet_runtime.auth.static import NoAuthenticator, StaticTokenAuthenticator


class ChainAuthenticator:
    """Routes a token to the authenticator of its kind: ``af_...`` → API keys,
    ``x.y.z`` → JWT, anything else → static tokens."""

    required = True

    def __init__(
        self,
        *,
        static: StaticTokenAuthenticator | None,
        api_keys: ApiKeyAuthenticator | None,
        jwt: JwtAuthenticator | None,
    ) -> None:
        self._static = static
        self._api_keys = api_keys
        self._jwt = jwt

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError("credentials are required: an API key or a bearer token")
        if self._api_keys is not None and looks_like_api_key(token):
            return await self._api_keys.authenticate(token)
        if self._jwt is not None and looks_like_jwt(token):
            return await self._jwt.authenticate(token)
        if self._static is not None:
            return await self._static.authenticate(token)
        raise AuthenticationError("the credentials are not valid")


def create_authenticator(
    settings: AuthSettings, api_keys: ApiKeyStore | None = None
) -> Authenticator:
    if settings.mode == "none":
        return NoAuthenticator()
    tokens = settings.all_tokens()
    if settings.mode == "static" and not tokens:
        raise ValueError("AGENTFLEET_AUTH__MODE=static needs AGENTFLEET_AUTH__TOKENS")
    if settings.mode == "jwt" and not settings.jwt.jwks_url:
        raise ValueError("AGENTFLEET_AUTH__MODE=jwt needs AGENTFLEET_AUTH__JWT__JWKS_URL")
    return ChainAuthenticator(
        static=StaticTokenAuthenticator(tokens) if tokens else None,
        api_keys=ApiKeyAuthenticator(api_keys) if api_keys is not None else None,
        jwt=JwtAuthenticator(settings.jwt) if settings.jwt.jwks_url else None,
    )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
