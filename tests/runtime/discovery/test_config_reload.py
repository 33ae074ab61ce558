"""Hot reload of the operator-rendered runtime config: agents added, removed and switched
over with health checks; a failing change rolled back; an invalid file rejected; an
unreadable source survived on the last known config."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from agentfleet_crds.contract import ResolvedSecret
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec

from .conftest import StartRuntime, agent_config, demo_mcp, write_config


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _agents(runtime: object) -> list[str]:
    response = await runtime.client.get("/api/v1/agents")  # type: ignore[attr-defined]
    return sorted(a["name"] for a in response.json()["items"])


async def test_agents_added_and_removed_without_restart(start_runtime: StartRuntime) -> None:
    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        assert await _agents(runtime) == ["calc"]

        write_config(runtime.config_path, agent_config("calc", mcp), agent_config("calc2", mcp))
        result = await runtime.reload()
        assert result["outcome"] == "applied"
        assert result["report"]["added"] == ["calc2"]
        assert await _agents(runtime) == ["calc", "calc2"]
        turn = await runtime.turn("calc2")
        assert turn["tool_calls"][0]["result"] == "42"

        write_config(runtime.config_path, agent_config("calc2", mcp))
        result = await runtime.reload()
        assert result["report"]["removed"] == ["calc"]
        assert await _agents(runtime) == ["calc2"]
        status = (await runtime.client.get("/api/v1/admin/config")).json()
        assert status["agents"] == ["calc2"]
        assert status["digest"] == result["digest"]
        # the same file again: nothing to do
        assert (await runtime.reload())["outcome"] == "unchanged"


async def test_a_change_switches_over_to_new_connections_after_health_checks(
    start_runtime: StartRuntime,
) -> None:
    async with (
        demo_mcp() as first,
        demo_mcp() as second,
        start_runtime(agent_config("calc", first)) as runtime,
    ):
        service = runtime.app.state.service
        old = service.loaded_agent("calc")
        switched_before = _metric("agentfleet_config_agent_changes_total", change="switched")

        write_config(runtime.config_path, agent_config("calc", second, prompt="Be brief."))
        result = await runtime.reload()

        assert result["outcome"] == "applied"
        assert result["report"]["switched"] == ["calc"]
        new = service.loaded_agent("calc")
        assert new is not old
        assert new.config.mcp_servers[0].url == second
        assert new.config.spec.system_prompt == "Be brief."
        turn = await runtime.turn("calc", "2+3")
        assert turn["tool_calls"][0]["result"] == "5"
        assert runtime.fake.script.last_request.messages[0]["content"] == "Be brief."
        # the old version's connections are drained, then closed
        for _ in range(100):
            if old.tools.health()["demo"].status == "closed":
                break
            await asyncio.sleep(0.05)
        assert old.tools.health()["demo"].status == "closed"
        assert _metric("agentfleet_config_agent_changes_total", change="switched") == (
            switched_before + 1
        )


async def test_a_change_that_fails_its_health_checks_is_rolled_back(
    start_runtime: StartRuntime,
) -> None:
    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        before = runtime.app.state.service.loaded_agent("calc")
        dead = "http://127.0.0.1:9/mcp/"  # discard port: nothing listens
        write_config(runtime.config_path, agent_config("calc", dead))

        result = await runtime.reload()

        assert result["outcome"] == "rolled_back"
        assert "calc" in result["report"]["rolled_back"]
        assert "health checks" in result["report"]["rolled_back"]["calc"]
        assert runtime.app.state.service.loaded_agent("calc") is before
        turn = await runtime.turn("calc", "1+1")  # the old version still serves
        assert turn["tool_calls"][0]["result"] == "2"
        status = (await runtime.client.get("/api/v1/admin/config")).json()
        assert status["watch"]["last_error"].startswith("calc: ")
        # the config in force is still the old one: fixing the file applies cleanly
        write_config(runtime.config_path, agent_config("calc", mcp, prompt="Fixed."))
        fixed = await runtime.reload()
        assert fixed["outcome"] == "applied"
        assert fixed["report"]["switched"] == ["calc"]


async def test_an_invalid_config_is_rejected_and_the_old_one_keeps_serving(
    start_runtime: StartRuntime,
) -> None:
    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        rejected = _metric("agentfleet_config_reloads_total", outcome="rejected")
        text = runtime.config_path.read_text()
        runtime.config_path.write_text(text.replace("fake-model", ""), encoding="utf-8")

        result = await runtime.reload()

        assert result["outcome"] == "rejected"
        assert "agents[0].spec.model.name" in result["detail"]
        assert _metric("agentfleet_config_reloads_total", outcome="rejected") == rejected + 1
        assert (await runtime.turn("calc", "3*3"))["tool_calls"][0]["result"] == "9"
        # the same bad text is not reported again
        assert (await runtime.reload())["outcome"] == "unchanged"


async def test_an_unreadable_source_keeps_the_last_known_config(
    start_runtime: StartRuntime,
) -> None:
    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        saved = runtime.config_path.read_text()
        runtime.config_path.unlink()

        result = await runtime.reload()

        assert result["outcome"] == "unavailable"
        assert _metric("agentfleet_discovery_source_up", source="config-file") == 0
        assert (await runtime.turn("calc", "4*4"))["tool_calls"][0]["result"] == "16"
        deps = (await runtime.client.get("/api/v1/admin/dependencies")).json()
        config = next(d for d in deps["dependencies"] if d["id"] == "config-file")
        assert config["health"] == "down"

        runtime.config_path.write_text(saved, encoding="utf-8")
        assert (await runtime.reload())["outcome"] == "unchanged"
        assert _metric("agentfleet_discovery_source_up", source="config-file") == 1


async def test_the_file_is_polled(start_runtime: StartRuntime) -> None:
    async with (
        demo_mcp() as mcp,
        start_runtime(agent_config("calc", mcp), discovery={"config_poll_seconds": 0.1}) as runtime,
    ):
        write_config(runtime.config_path, agent_config("calc", mcp), agent_config("more", mcp))
        for _ in range(100):
            if await _agents(runtime) == ["calc", "more"]:
                break
            await asyncio.sleep(0.05)
        assert await _agents(runtime) == ["calc", "more"]


async def test_secret_bindings_are_applied_live(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    (secrets_dir / "crm").mkdir(parents=True)
    (secrets_dir / "crm" / "token").write_text("first-token")
    (secrets_dir / "crm" / "other").write_text("second-token")

    def bound(key: str) -> ResolvedSecret:
        return ResolvedSecret.model_validate(
            {
                "name": "crm-token",
                "provider": "kubernetes",
                "binding": "crm",
                "file": str(secrets_dir / "crm" / key),
            }
        )

    async with (
        demo_mcp() as mcp,
        start_runtime(agent_config("calc", mcp), secrets_dir=secrets_dir) as runtime,
    ):
        manager = runtime.app.state.secrets
        assert "crm-token" not in list(manager.names())

        with_secret = agent_config("calc", mcp).model_copy(update={"secrets": [bound("token")]})
        write_config(runtime.config_path, with_secret)
        result = await runtime.reload()
        assert result["outcome"] == "applied", result
        assert result["report"]["secrets"]["added"] == ["crm-token"]
        assert result["report"]["switched"] == ["calc"]
        value = await manager.get("crm-token", consumer="agent:calc")
        assert value.get_secret_value() == "first-token"

        moved = agent_config("calc", mcp).model_copy(update={"secrets": [bound("other")]})
        write_config(runtime.config_path, moved)
        result = await runtime.reload()
        assert result["report"]["secrets"]["changed"] == ["crm-token"]
        value = await manager.get("crm-token", consumer="agent:calc")
        assert value.get_secret_value() == "second-token"

        write_config(runtime.config_path, agent_config("calc", mcp))
        result = await runtime.reload()
        assert result["report"]["secrets"]["removed"] == ["crm-token"]
        assert "crm-token" not in list(manager.names())


async def test_a_resilience_policy_change_is_applied_live(start_runtime: StartRuntime) -> None:
    async with demo_mcp() as mcp, start_runtime(agent_config("calc", mcp)) as runtime:
        registry = runtime.app.state.resilience
        before = registry.get_pipeline("mcp:demo").timeout

        strict = agent_config("calc", mcp).model_copy(
            update={
                "resilience": ResiliencePolicySpec.model_validate({"http": {"timeoutSeconds": 3.5}})
            }
        )
        write_config(runtime.config_path, strict)
        result = await runtime.reload()

        assert result["report"]["switched"] == ["calc"]
        assert before != 3.5
        assert registry.get_pipeline("mcp:demo").timeout == 3.5
        assert (await runtime.turn("calc", "5*5"))["tool_calls"][0]["result"] == "25"
