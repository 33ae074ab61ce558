"""Server-side rate limits of the REST API: token buckets per caller (API key, or subject)
and endpoint class (``read``, ``invoke``, ``admin``), and per tenant. The buckets live in
the state backend's :class:`~agentfleet_runtime.state.base.RateLimitStore`: on Redis every
replica draws from the same bucket, in memory they are per process.

Every limited response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (seconds until the bucket is full again) of the tightest bucket; a
refusal is a 429 problem (``rate-limit-exceeded``) with ``Retry-After``."""

from __future__ import annotations

import math
from enum import StrEnum

from fastapi import Response
from pydantic import BaseModel, Field

from agentfleet_runtime.auth.base import Principal
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.state.base import RateDecision, RateLimitStore
from agentfleet_runtime.tenants import TenantQuotas, TenantStore


class EndpointClass(StrEnum):
    READ = "read"
    INVOKE = "invoke"
    ADMIN = "admin"


class Bucket(BaseModel):
    """``per_minute`` requests on average, ``burst`` at once."""

    per_minute: int = Field(ge=1)
    burst: int = Field(ge=1)

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0


class ApiRateLimitSettings(BaseModel):
    """``AGENTFLEET_RATE_LIMITS__*``: the API's limits (per caller and endpoint class, and
    per tenant). A tenant's ``quotas.requests_per_minute`` (its own, else
    ``AGENTFLEET_TENANCY__DEFAULT_QUOTAS__REQUESTS_PER_MINUTE``) overrides ``tenant``."""

    enabled: bool = True
    read: Bucket = Field(default_factory=lambda: Bucket(per_minute=1200, burst=300))
    invoke: Bucket = Field(default_factory=lambda: Bucket(per_minute=300, burst=100))
    admin: Bucket = Field(default_factory=lambda: Bucket(per_minute=300, burst=100))
    tenant: Bucket = Field(default_factory=lambda: Bucket(per_minute=3000, burst=600))


class RateLimitExceededError(AgentfleetError):
    status = 429
    slug = "rate-limit-exceeded"
    title = "Rate limit exceeded"

    def __init__(self, detail: str, *, headers: dict[str, str], **extensions: object) -> None:
        super().__init__(detail, **extensions)
        self.headers = headers


def _headers(bucket: Bucket, decision: RateDecision) -> dict[str, str]:
    missing = bucket.burst - decision.remaining
    return {
        "RateLimit-Limit": str(bucket.burst),
        "RateLimit-Remaining": str(max(0, decision.remaining)),
        "RateLimit-Reset": str(max(0, math.ceil(missing / bucket.rate))),
    }


class ApiRateLimiter:
    def __init__(
        self,
        settings: ApiRateLimitSettings,
        store: RateLimitStore,
        tenants: TenantStore,
        *,
        default_quotas: TenantQuotas | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._tenants = tenants
        self._default_rpm = default_quotas.requests_per_minute if default_quotas else None

    async def _tenant_bucket(self, tenant_id: str) -> Bucket:
        """The tenant's bucket: its own ``requests_per_minute`` quota, else the default
        quota (``AGENTFLEET_TENANCY__DEFAULT_QUOTAS__REQUESTS_PER_MINUTE``), else
        ``AGENTFLEET_RATE_LIMITS__TENANT``. A quota's burst is at most the quota."""
        tenant = await self._tenants.get(tenant_id)
        rpm = tenant.quotas.requests_per_minute if tenant is not None else None
        rpm = rpm if rpm is not None else self._default_rpm
        bucket = self.settings.tenant
        if rpm is None:
            return bucket
        return Bucket(per_minute=rpm, burst=max(1, min(rpm, bucket.burst)))

    async def check(
        self, principal: Principal, endpoint: EndpointClass, response: Response
    ) -> None:
        if not self.settings.enabled:
            return
        caller = principal.key_id or principal.subject
        bucket = getattr(self.settings, endpoint.value)
        tenant_bucket = await self._tenant_bucket(principal.tenant)
        checks = [
            (f"api:caller:{principal.tenant}:{caller}:{endpoint.value}", bucket, "caller"),
            (f"api:tenant:{principal.tenant}", tenant_bucket, "tenant"),
        ]
        tightest: tuple[Bucket, RateDecision] | None = None
        for key, limit, scope in checks:
            decision = await self._store.acquire(key, rate=limit.rate, burst=limit.burst)
            if not decision.allowed:
                headers = _headers(limit, decision)
                headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
                raise RateLimitExceededError(
                    f"too many {endpoint.value} requests for this {scope}: "
                    f"{limit.per_minute} per minute (burst {limit.burst})",
                    headers=headers,
                    limit_scope=scope,
                    retry_after=decision.retry_after,
                )
            if tightest is None or decision.remaining < tightest[1].remaining:
                tightest = (limit, decision)
        assert tightest is not None
        response.headers.update(_headers(*tightest))
