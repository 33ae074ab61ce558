"""The resilience layer inside the running runtime (real HTTP everywhere): degraded
answers, dead letters (list, replay, discard), the admin API (breaker control, flags),
the per-turn cap on a failing tool, token and cost metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, MCPTransport
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.app import create_app
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.servers import running_server

from .conftest import Fault, Faults, category, faulty_demo, policy

ADMIN = "test-admin-token-0123456789"


@dataclass
class Runtime:
    client: httpx2.AsyncClient
    fake: RunningFakeProvider

    async def session(self, agent: str = "calc") -> str:
        response = await self.client.post("/api/v1/sessions", json={"agent": agent})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    async def say(self, session: str, content: str) -> httpx2.Response:
        return await self.client.post(
            f"/api/v1/sessions/{session}/messages", json={"content": content}
        )

    def admin(self, token: str = ADMIN) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}


def agent(
    fake: RunningFakeProvider,
    resilience: ResiliencePolicySpec,
    servers: list[ResolvedMCPServer] | None = None,
) -> AgentConfig:
    spec = AgentSpec.model_validate(
        {
            "systemPrompt": "You are a calculator.",
            "model": {"provider": "fake", "name": "fake-model", "baseUrl": fake.url},
            "tools": [{"mcpServerRef": {"name": s.name}} for s in servers or []],
        }
    )
    return AgentConfig(
        name="calc", namespace="team-a", spec=spec, mcp_servers=servers or [], resilience=resilience
    )


@contextlib.asynccontextmanager
async def runtime(
    fake: RunningFakeProvider,
    spec: ResiliencePolicySpec,
    servers: list[ResolvedMCPServer] | None = None,
    **settings: Any,
) -> AsyncIterator[Runtime]:
    config = RuntimeConfig(agents=[agent(fake, spec, servers)])
    app = create_app(RuntimeSettings(log_format="console", **settings), runtime_config=config)
    async with (
        running_server(app) as server,
        httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        for _ in range(200):
            if (await client.get("/healthz/ready")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        yield Runtime(client=client, fake=fake)


FAST = policy(llm=category(attempts=2, threshold=2, base_delay=0.01, recovery=60))


async def test_overloaded_model_gives_a_degraded_answer(fake_provider: RunningFakeProvider) -> None:
    fake_provider.script.fallback = FakeReply(status=529)
    async with runtime(fake_provider, FAST) as rt:
        session = await rt.session()
        response = await rt.say(session, "hello")
        assert response.status_code == 200, response.text
        body = response.json()
        assert "cannot answer right now" in body["answer"]["content"]
        assert "fake/fake-model (overloaded)" in body["answer"]["content"]
        assert body["degraded"]["reason"] == "models-unavailable"
        assert len(fake_provider.script.requests) == 2
        again = (await rt.say(session, "hello?")).json()  # breaker open: nothing sent
        assert again["degraded"]["failures"][0]["reason"] == "circuitOpen"
        assert len(fake_provider.script.requests) == 2
        metrics = (await rt.client.get("/metrics")).text
        assert 'agentfleet_degraded_answers_total{agent="calc",reason="models-unavailable"}' in (
            metrics
        )
        assert 'agentfleet_circuit_breaker_state{breaker="llm:fake/fake-model"} 2.0' in metrics


async def test_failed_turns_become_dead_letters_to_replay_or_discard(
    fake_provider: RunningFakeProvider,
) -> None:
    async with runtime(fake_provider, FAST) as rt:
        session = await rt.session()
        fake_provider.script.push_error(401, message="invalid key")
        response = await rt.say(session, "what is 6*7?")
        assert response.status_code == 502
        assert response.json()["type"].endswith("/dependency-auth")
        assert len(fake_provider.script.requests) == 1  # auth errors are never retried
        listed = (await rt.client.get("/api/v1/deadletters")).json()["items"]
        assert len(listed) == 1
        letter = listed[0]
        assert letter["content"] == "what is 6*7?"
        assert letter["error_class"] == "auth"
        assert letter["session_id"] == session
        # the key is fixed: replay it
        fake_provider.script.push_text("42")
        replayed = await rt.client.post(f"/api/v1/deadletters/{letter['id']}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["status"] == "replayed"
        turn = replayed.json()["replay_turn_id"]
        for _ in range(200):
            events = (await rt.client.get(f"/api/v1/sessions/{session}/events")).json()
            done = [e for e in events["items"] if e["turn_id"] == turn]
            if done and done[-1]["type"] == "turn.completed":
                break
            await asyncio.sleep(0.02)
        assert done[-1]["data"]["answer"]["content"] == "42"
        again = await rt.client.post(f"/api/v1/deadletters/{letter['id']}/replay")
        assert again.status_code == 409
        # another failure, discarded, then deleted
        fake_provider.script.push_error(400, message="bad request")
        assert (await rt.say(session, "bad")).status_code == 502
        pending = (await rt.client.get("/api/v1/deadletters?status=pending")).json()["items"]
        assert [item["content"] for item in pending] == ["bad"]
        discarded = await rt.client.post(f"/api/v1/deadletters/{pending[0]['id']}/discard")
        assert discarded.json()["status"] == "discarded"
        deleted = await rt.client.delete(f"/api/v1/deadletters/{pending[0]['id']}")
        assert deleted.status_code == 204
        assert (await rt.client.get(f"/api/v1/deadletters/{pending[0]['id']}")).status_code == 404


OPERATOR_ADMIN = "operator-admin-token"
OPERATOR_READER = "operator-reader-token"
OTHER_ADMIN = "other-tenant-admin-token"
AUTH = AuthSettings(
    mode="static",
    tokens=[
        StaticToken(token=OPERATOR_ADMIN, subject="ops"),  # type: ignore[arg-type]
        StaticToken(token=OPERATOR_READER, subject="ro", scopes=["read"]),  # type: ignore[arg-type]
        StaticToken(token=OTHER_ADMIN, subject="other", tenant="other"),  # type: ignore[arg-type]
    ],
)


async def test_admin_api_needs_the_operator_tenants_admin_scope(
    fake_provider: RunningFakeProvider,
) -> None:
    async with runtime(fake_provider, FAST, auth=AUTH) as rt:
        anonymous = await rt.client.get("/api/v1/admin/breakers")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        reader = await rt.client.get("/api/v1/admin/breakers", headers=rt.admin(OPERATOR_READER))
        assert reader.status_code == 403
        assert reader.json()["required_scope"] == "admin"
        other = await rt.client.get("/api/v1/admin/breakers", headers=rt.admin(OTHER_ADMIN))
        assert other.status_code == 403  # breakers are shared: not another tenant's admin
        right = await rt.client.get("/api/v1/admin/breakers", headers=rt.admin(OPERATOR_ADMIN))
        assert right.status_code == 200
        assert [b["name"] for b in right.json()["items"]] == ["llm:fake/fake-model"]
        assert "deprecation" not in right.headers
        # without AGENTFLEET_RESILIENCE__ADMIN_TOKEN the old token is just a wrong one
        assert (
            await rt.client.get("/api/v1/admin/breakers", headers=rt.admin())
        ).status_code == 401


async def test_the_old_admin_token_still_works_deprecated(
    fake_provider: RunningFakeProvider,
) -> None:
    async with runtime(fake_provider, FAST, auth=AUTH, resilience={"admin_token": ADMIN}) as rt:
        old = await rt.client.get("/api/v1/admin/breakers", headers=rt.admin())
        assert old.status_code == 200
        assert old.headers["deprecation"] == "@1793491200"
        assert 'rel="deprecation"' in old.headers["link"]
        wrong = await rt.client.get("/api/v1/admin/breakers", headers=rt.admin("nope"))
        assert wrong.status_code == 401
        # the token still only opens the admin API
        assert (await rt.client.get("/api/v1/sessions", headers=rt.admin())).status_code == 401


async def test_breakers_are_forced_and_reset_through_the_admin_api(
    fake_provider: RunningFakeProvider,
) -> None:
    async with runtime(fake_provider, FAST, resilience={"admin_token": ADMIN}) as rt:
        session = await rt.session()
        name = "llm:fake/fake-model"
        forced = await rt.client.post(
            f"/api/v1/admin/breakers/{name}/force-open", headers=rt.admin()
        )
        assert forced.status_code == 200, forced.text
        assert forced.json()["state"] == "forced-open"
        body = (await rt.say(session, "hi")).json()
        assert body["degraded"]["failures"][0]["reason"] == "circuitOpen"
        assert fake_provider.script.requests == type(fake_provider.script.requests)()
        reset = await rt.client.post(f"/api/v1/admin/breakers/{name}/reset", headers=rt.admin())
        assert reset.json()["state"] == "closed"
        fake_provider.script.push_text("back")
        assert (await rt.say(session, "hi")).json()["answer"]["content"] == "back"
        missing = await rt.client.post("/api/v1/admin/breakers/llm:nope/reset", headers=rt.admin())
        assert missing.status_code == 404
        # feature flags, without a restart
        flags = await rt.client.patch(
            "/api/v1/admin/resilience/flags", json={"retry": False}, headers=rt.admin()
        )
        assert flags.json()["retry"] is False
        fake_provider.script.push_error(503)
        body = (await rt.say(session, "hi")).json()
        assert body["degraded"]["failures"][0]["reason"] == "overloaded"
        assert len(fake_provider.script.requests) == 2  # one attempt: retries are off
        overview = await rt.client.get("/api/v1/admin/resilience", headers=rt.admin())
        assert overview.json()["flags"]["retry"] is False
        assert overview.json()["pipelines"][0]["name"] == name


async def test_a_failing_tool_is_capped_per_turn(fake_provider: RunningFakeProvider) -> None:
    faults = Faults(always=Fault(status=503))
    async with faulty_demo(faults) as url:
        demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=url)
        resilience = policy(
            llm=category(attempts=1),
            http=category(attempts=2, threshold=50, base_delay=0.01),
        )
        async with runtime(fake_provider, resilience, [demo]) as rt:
            session = await rt.session()
            for _ in range(4):
                fake_provider.script.push_tool_call("calculate", {"expression": "1+1"})
            fake_provider.script.push_text("the calculator is down")
            body = (await rt.say(session, "1+1?")).json()
            results = [call["result"] for call in body["tool_calls"]]
            assert len(results) == 4
            assert all("unavailable" in r for r in results[:2])
            assert all("failed 2 times in this turn" in r for r in results[2:])
            assert faults.tool_calls == 4  # 2 calls x 2 attempts; the capped ones sent nothing
            assert body["answer"]["content"] == "the calculator is down"


async def test_token_and_cost_metrics_per_agent_and_tenant(
    fake_provider: RunningFakeProvider,
) -> None:
    async with runtime(fake_provider, FAST) as rt:
        session = await rt.session()
        fake_provider.script.push(FakeReply(text="ok", input_tokens=1000, output_tokens=500))
        assert (await rt.say(session, "hi")).status_code == 200
        metrics = (await rt.client.get("/metrics")).text
        labels = 'agent="calc",direction="input",model="fake-model",provider="fake",tenant="team-a"'
        assert f"agentfleet_llm_tokens_total{{{labels}}}" in metrics
        cost = [
            line
            for line in metrics.splitlines()
            if line.startswith("agentfleet_llm_cost_usd_total{")
            and 'agent="calc"' in line
            and 'tenant="team-a"' in line
        ]
        assert cost
        assert float(cost[0].split()[-1]) >= 0.002
        assert (
            'agentfleet_dependency_calls_total{category="llm",dependency="llm:fake/fake-model"'
            in (metrics)
        )
