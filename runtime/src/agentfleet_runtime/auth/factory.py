"""The authenticator the settings ask for."""

from __future__ import annotations

from agentfleet_runtime.auth.base import Authenticator
from agentfleet_runtime.auth.settings import AuthSettings
from agentfleet_runtime.auth.static import NoAuthenticator, StaticTokenAuthenticator


def create_authenticator(settings: AuthSettings) -> Authenticator:
    if settings.mode == "static":
        if not settings.tokens:
            raise ValueError("AGENTFLEET_AUTH__MODE=static needs AGENTFLEET_AUTH__TOKENS")
        return StaticTokenAuthenticator(settings.tokens)
    return NoAuthenticator()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
