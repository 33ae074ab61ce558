"""``AGENTFLEET_AUTH__*``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class StaticToken(BaseModel):
    """A token accepted as-is (e.g. from a mounted Secret), optionally until a time. Handy
    as the bootstrap admin credential that creates the first API keys."""

    token: SecretStr
    subject: str = "static"
    scopes: list[str] = Field(default_factory=lambda: ["*"])
    expires_at: datetime | None = None
    tenant: str = Field(default="default", pattern=TENANT_PATTERN)


class JwtSettings(BaseModel):
    """OIDC/JWT bearer tokens from an identity provider (``AGENTFLEET_AUTH__JWT__*``)."""

    #: The provider's JWKS document, e.g. ``https://idp.example.com/.well-known/jwks.json``.
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    #: The claim naming the caller's tenant.
    tenant_claim: str = "tenant"
    #: The claim with the granted scopes (space-separated string or list).
    scopes_claim: str = "scope"
    #: Tenant of tokens without the claim; empty refuses such tokens.
    default_tenant: str = ""
    leeway_seconds: float = Field(default=30.0, ge=0)
    jwks_cache_seconds: float = Field(default=300.0, gt=0)


class AuthSettings(BaseModel):
    """How REST and WebSocket callers authenticate.

    ``none`` (development default) lets everyone in as ``anonymous`` of the default
    tenant with every scope, and is refused in production unless
    ``allow_none_in_production``. Any other mode requires credentials and accepts every
    kind that is configured: static tokens (``tokens``), API keys (always; created through
    ``/api/v1/api-keys``) and JWTs (when ``jwt.jwks_url`` is set). ``static`` and ``jwt``
    also require their part to be configured. Example:
    ``AGENTFLEET_AUTH__MODE=api-keys``,
    ``AGENTFLEET_AUTH__TOKENS='[{"token": "...", "subject": "bootstrap"}]'``."""

    mode: Literal["none", "static", "api-keys", "jwt"] = "none"
    tokens: list[StaticToken] = Field(default_factory=list)
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    #: Let production run with ``mode=none`` (e.g. behind an authenticating gateway).
    allow_none_in_production: bool = False
    #: A file holding one admin token (e.g. a Secret mounted through a SecretBinding):
    #: the bootstrap credential that creates the first API keys. One line, no JSON, so
    #: that it can be set where ``tokens`` cannot (the Helm chart's runtime env).
    bootstrap_token_file: Path | None = None

    def all_tokens(self) -> list[StaticToken]:
        """``tokens`` plus the bootstrap token, read from its file now."""
        if self.bootstrap_token_file is None:
            return list(self.tokens)
        try:
            value = self.bootstrap_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(
                f"AGENTFLEET_AUTH__BOOTSTRAP_TOKEN_FILE: cannot read {self.bootstrap_token_file}"
                f" ({exc.strerror})"
            ) from exc
        if len(value) < 16:
            raise ValueError(
                "AGENTFLEET_AUTH__BOOTSTRAP_TOKEN_FILE: the token must be at least 16 characters"
            )
        return [*self.tokens, StaticToken(token=SecretStr(value), subject="bootstrap")]
