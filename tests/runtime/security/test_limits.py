"""Server-side rate limits (headers, 429 problem) and tenant quotas."""

from __future__ import annotations

from typing import Any

from agentfleet_runtime.api.ratelimit import ApiRateLimitSettings, Bucket
from agentfleet_runtime.config import TenancySettings
from agentfleet_runtime.tenants import TenantQuotas


async def test_rate_limit_headers_and_429(make_secure: Any) -> None:
    limits = ApiRateLimitSettings(read=Bucket(per_minute=60, burst=3))
    async with make_secure(rate_limits=limits) as rt:
        a = rt.as_(rt.admin_a)
        first = await rt.client.get("/api/v1/sessions", headers=a)
        assert first.headers["RateLimit-Limit"] == "3"
        assert first.headers["RateLimit-Remaining"] == "2"
        assert int(first.headers["RateLimit-Reset"]) >= 1
        for _ in range(2):
            assert (await rt.client.get("/api/v1/sessions", headers=a)).status_code == 200
        refused = await rt.client.get("/api/v1/sessions", headers=a)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"].endswith("/rate-limit-exceeded")
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Remaining"] == "0"
        # Per caller: the other tenant's admin has its own bucket.
        other = await rt.client.get("/api/v1/sessions", headers=rt.as_(rt.admin_b))
        assert other.status_code == 200


async def test_tenant_session_quota(make_secure: Any, agent_body: Any) -> None:
    tenancy = TenancySettings(default_quotas=TenantQuotas(max_sessions=1))
    async with make_secure(tenancy=tenancy) as rt:
        a = rt.as_(rt.admin_a)
        assert (
            await rt.client.post("/api/v1/agents", json=agent_body, headers=a)
        ).status_code == 201
        ok = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
        assert ok.status_code == 201
        over = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
        assert over.status_code == 429
        body = over.json()
        assert body["type"].endswith("/quota-exceeded")
        assert body["quota"] == "max_sessions"
        assert body["limit"] == 1
        # A tenant record with its own quota overrides the default.
        raised = await rt.client.post(
            "/api/v1/tenants", json={"id": "default", "quotas": {"max_sessions": 5}}, headers=a
        )
        assert raised.status_code == 201
        again = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
        assert again.status_code == 201
