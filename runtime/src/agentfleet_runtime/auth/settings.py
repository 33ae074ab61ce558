"""``AGENTFLEET_AUTH__*``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class StaticToken(BaseModel):
    """A token accepted as-is (e.g. from a mounted Secret), optionally until a time."""

    token: SecretStr
    subject: str = "static"
    scopes: list[str] = Field(default_factory=lambda: ["*"])
    expires_at: datetime | None = None


class AuthSettings(BaseModel):
    """How REST and WebSocket callers authenticate. ``none`` (development default) lets
    everyone in as ``anonymous``; ``static`` accepts the configured bearer tokens, e.g.
    ``AGENTFLEET_AUTH__MODE=static``,
    ``AGENTFLEET_AUTH__TOKENS='[{"token": "...", "subject": "ci"}]'``."""

    mode: Literal["none", "static"] = "none"
    tokens: list[StaticToken] = Field(default_factory=list)
