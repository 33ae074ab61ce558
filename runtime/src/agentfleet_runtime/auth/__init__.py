"""Who is calling: the ``Authenticator`` port (a token → a :class:`Principal`), with a
static-token implementation from the settings. API keys and JWT are further
implementations of the same port (not built yet)."""

from agentfleet_runtime.auth.base import (
    ANONYMOUS,
    AuthenticationError,
    Authenticator,
    ForbiddenError,
    Principal,
    TokenExpiredError,
)
from agentfleet_runtime.auth.factory import create_authenticator
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken

__all__ = [
    "ANONYMOUS",
    "AuthSettings",
    "AuthenticationError",
    "Authenticator",
    "ForbiddenError",
    "Principal",
    "StaticToken",
    "TokenExpiredError",
    "create_authenticator",
]
