"""Tenants: every stored object (API-created agents, sessions and everything under them,
dead letters, API keys) belongs to one; a caller sees only its own tenant's. The tenant
comes from the caller's identity (its API key, a JWT claim, a static token's setting;
``default`` when authentication is off)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol

from pydantic import BaseModel, Field

from agentfleet_runtime.auth.settings import TENANT_PATTERN
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.state.base import utcnow

TenantId = Annotated[str, Field(min_length=1, max_length=63, pattern=TENANT_PATTERN)]


class TenantQuotas(BaseModel):
    """Limits of one tenant (``None``: the runtime's default from the settings)."""

    max_sessions: int | None = Field(default=None, ge=0, description="Sessions kept at once")
    max_concurrent_turns: int | None = Field(
        default=None, ge=1, description="Turns running at the same time"
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="REST requests per minute across all its keys"
    )


class TenantRecord(BaseModel):
    id: TenantId
    display_name: str | None = None
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)
    created_at: datetime = Field(default_factory=utcnow)


class TenantStore(Protocol):
    async def put(self, record: TenantRecord) -> None: ...
    async def get(self, tenant_id: str) -> TenantRecord | None: ...
    async def list(self) -> list[TenantRecord]: ...
    async def delete(self, tenant_id: str) -> bool: ...


class TenantQuotaExceededError(AgentfleetError):
    """A tenant quota is used up (HTTP 429 with the quota's name and limit)."""

    status = 429
    slug = "quota-exceeded"
    title = "Tenant quota exceeded"
