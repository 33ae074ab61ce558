"""Server-side rate limits (headers, 429 problem) and tenant quotas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentfleet_runtime.api.ratelimit import ApiRateLimitSettings, Bucket
from agentfleet_runtime.config import TenancySettings
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.state.settings import StateSettings
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


async def test_default_requests_per_minute_quota_applies(make_secure: Any) -> None:
    """``AGENTFLEET_TENANCY__DEFAULT_QUOTAS__REQUESTS_PER_MINUTE`` limits every tenant
    without a quota of its own (the per-caller buckets are far larger here)."""
    tenancy = TenancySettings(default_quotas=TenantQuotas(requests_per_minute=2))
    async with make_secure(tenancy=tenancy) as rt:
        a = rt.as_(rt.admin_a)
        for _ in range(2):
            ok = await rt.client.get("/api/v1/sessions", headers=a)
            assert ok.status_code == 200
        assert ok.headers["RateLimit-Limit"] == "2"
        refused = await rt.client.get("/api/v1/sessions", headers=a)
        assert refused.status_code == 429
        assert refused.json()["limit_scope"] == "tenant"
        assert "2 per minute" in refused.json()["detail"]
        # Another tenant has its own bucket of the same default size.
        assert (await rt.client.get("/api/v1/sessions", headers=rt.as_(rt.admin_b))).is_success


async def test_tokens_per_day_quota_refuses_the_next_turn(
    make_secure: Any, agent_body: Any
) -> None:
    tenancy = TenancySettings(default_quotas=TenantQuotas(tokens_per_day=1))
    async with make_secure(tenancy=tenancy) as rt:
        a = rt.as_(rt.admin_a)
        assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=a)).is_success
        sid = (await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)).json()[
            "id"
        ]
        first = await rt.client.post(
            f"/api/v1/sessions/{sid}/messages", json={"content": "hello"}, headers=a
        )
        assert first.status_code == 200, first.text  # nothing used yet today: it runs
        spent = first.json()["usage"]["input_tokens"] + first.json()["usage"]["output_tokens"]
        assert spent > 1
        assert await rt.app.state.quotas.tokens_used("default") == spent

        for path in (f"/api/v1/sessions/{sid}/messages", f"/api/v1/sessions/{sid}/messages/stream"):
            refused = await rt.client.post(path, json={"content": "again"}, headers=a)
            assert refused.status_code == 429, (path, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            body = refused.json()
            assert body["type"].endswith("/quota-exceeded")
            assert (body["quota"], body["limit"], body["used"]) == ("tokens_per_day", 1, spent)
            resets = datetime.fromisoformat(body["resets_at"])
            assert resets.hour == resets.minute == 0
            assert timedelta(0) < resets - datetime.now(UTC) <= timedelta(days=1)
            assert 1 <= int(refused.headers["Retry-After"]) <= 86_400

        # The other tenant's tokens are its own.
        b = rt.as_(rt.admin_b)
        assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=b)).is_success
        other = (await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=b)).json()
        answer = await rt.client.post(
            f"/api/v1/sessions/{other['id']}/messages", json={"content": "hi"}, headers=b
        )
        assert answer.status_code == 200, answer.text
        # A tenant record with a larger quota lets tenant a go on today.
        raised = await rt.client.post(
            "/api/v1/tenants",
            json={"id": "default", "quotas": {"tokens_per_day": 1_000_000}},
            headers=a,
        )
        assert raised.status_code == 201
        again = await rt.client.post(
            f"/api/v1/sessions/{sid}/messages", json={"content": "again"}, headers=a
        )
        assert again.status_code == 200, again.text


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_concurrent_session_creations_never_exceed_max_sessions(
    make_secure: Any, agent_body: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    """Many creations at once: exactly ``max_sessions`` succeed (the quota is checked and
    the session created under the tenant's quota lock; on Redis a Redis lock)."""
    state = StateSettings()
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        state = StateSettings(backend="redis", redis_url=server.url)
    tenancy = TenancySettings(default_quotas=TenantQuotas(max_sessions=3))
    async with make_secure(tenancy=tenancy, state=state) as rt:
        a = rt.as_(rt.admin_a)
        assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=a)).is_success
        responses = await asyncio.gather(
            *(
                rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
                for _ in range(12)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 3 + [429] * 9, [r.text for r in responses]
        listed = await rt.client.get("/api/v1/sessions", headers=a)
        assert len(listed.json()["items"]) == 3
        # Deleting one frees a slot.
        await rt.client.delete(f"/api/v1/sessions/{listed.json()['items'][0]['id']}", headers=a)
        assert (
            await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)
        ).status_code == 201


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_concurrent_turns_never_exceed_max_concurrent_turns(
    make_secure: Any, agent_body: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    """12 turns at once (12 sessions, a slow model) against a limit of 3: exactly 3 run,
    the others are refused with 429; the slots are freed when the turns end (completed
    or failed), so new turns are accepted again."""
    state = StateSettings()
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        state = StateSettings(backend="redis", redis_url=server.url)
    tenancy = TenancySettings(default_quotas=TenantQuotas(max_concurrent_turns=3))
    async with make_secure(tenancy=tenancy, state=state) as rt:
        assert rt.fake is not None
        rt.fake.script.fallback = FakeReply(text="slow answer", latency_seconds=1.0)
        a = rt.as_(rt.admin_a)
        assert (await rt.client.post("/api/v1/agents", json=agent_body, headers=a)).is_success
        sids = [
            (await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=a)).json()[
                "id"
            ]
            for _ in range(12)
        ]

        async def turn(sid: str) -> Any:
            return await rt.client.post(
                f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=a
            )

        responses = await asyncio.gather(*(turn(sid) for sid in sids))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 3 + [429] * 9, [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 429)
        body = refused.json()
        assert body["type"].endswith("/quota-exceeded")
        assert (body["quota"], body["limit"], body["used"]) == ("max_concurrent_turns", 3, 3)
        assert int(refused.headers["Retry-After"]) >= 1
        model_calls = len(rt.fake.script.requests)
        assert model_calls == 3  # the refused turns never reached the model
        guard = rt.app.state.quotas
        assert await guard.turns_running("default") == 0  # no slot leaked

        # A failed turn frees its slot too.
        rt.fake.script.push_error(400, message="bad request")
        failed = await turn(sids[0])
        assert failed.status_code >= 400, failed.text
        assert await guard.turns_running("default") == 0

        # The SSE route answers 429 before its stream starts while the slots are taken.
        running = [asyncio.create_task(turn(sid)) for sid in sids[:3]]
        for _ in range(200):  # until the three hold their slots
            if await guard.turns_running("default") == 3:
                break
            await asyncio.sleep(0.02)
        streamed = await rt.client.post(
            f"/api/v1/sessions/{sids[5]}/messages/stream", json={"content": "hi"}, headers=a
        )
        assert streamed.status_code == 429
        assert streamed.json()["quota"] == "max_concurrent_turns"
        assert [r.status_code for r in await asyncio.gather(*running)] == [200] * 3
        assert await guard.turns_running("default") == 0
        again = await asyncio.gather(*(turn(sid) for sid in sids[3:6]))
        assert [r.status_code for r in again] == [200] * 3
