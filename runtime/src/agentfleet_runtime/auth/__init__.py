"""Who is calling: the ``Authenticator`` port (a token → a :class:`Principal`), with a
static-token, API-key and OIDC/JWT implementations chained by the factory. A principal
carries its tenant and scopes (``read`` ⊆ ``agent-invoke`` ⊆ ``admin``)."""

from agentfleet_runtime.auth.base import (
    ANONYMOUS,
    DEFAULT_TENANT,
    AuthenticationError,
    Authenticator,
    ForbiddenError,
    Principal,
    Scope,
    TokenExpiredError,
)
from agentfleet_runtime.auth.factory import create_authenticator
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken

__all__ = [
    "ANONYMOUS",
    "DEFAULT_TENANT",
    "AuthSettings",
    "AuthenticationError",
    "Authenticator",
    "ForbiddenError",
    "Principal",
    "Scope",
    "StaticToken",
    "TokenExpiredError",
    "create_authenticator",
]
