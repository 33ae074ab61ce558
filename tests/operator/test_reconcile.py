"""One reconcile (fetch → render → apply → status) against the emulated API, without kopf:
the paths the kopf integration test does not walk."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.agents import reconcile, reconcile_agent
from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.apply import contains
from agentfleet_operator.kube.resources import (
    AGENTS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    HPAS,
    MCP_SERVERS,
    PDBS,
    RESILIENCE_POLICIES,
)
from agentfleet_operator.settings import OperatorSettings
from agentfleet_operator.status import Applied, Blocked

NS = "team-a"


@pytest.fixture
def context(kube: KubeClient) -> OperatorContext:
    return OperatorContext(settings=OperatorSettings(dependency_retry_seconds=7), kube=kube)


def agent_body(name: str = "helper", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {"model": {"provider": "fake", "name": "m"}, **spec},
    }


def ready_reason(status: dict[str, Any]) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == "Ready")["reason"])


async def test_optional_objects_follow_the_spec(context: OperatorContext, kube: KubeClient) -> None:
    deployment = {"autoscaling": {"enabled": True}, "podDisruptionBudget": {"enabled": True}}
    raw = await kube.create(AGENTS, NS, agent_body(deployment=deployment))
    result = await reconcile(context, raw)
    assert isinstance(result.outcome, Applied)
    assert await kube.get_or_none(HPAS, NS, "helper") is not None
    assert await kube.get_or_none(PDBS, NS, "helper") is not None
    assert "replicas" not in (await kube.get(DEPLOYMENTS, NS, "helper"))["spec"]  # HPA's call

    raw = await kube.patch(AGENTS, NS, "helper", {"spec": {"deployment": {"autoscaling": None}}})
    await reconcile(context, raw)
    assert await kube.get_or_none(HPAS, NS, "helper") is None
    assert await kube.get_or_none(PDBS, NS, "helper") is not None
    assert (await kube.get(DEPLOYMENTS, NS, "helper"))["spec"]["replicas"] == 1


async def test_reconcile_is_idempotent(context: OperatorContext, kube: KubeClient) -> None:
    raw = await kube.create(AGENTS, NS, agent_body())
    await reconcile(context, raw)
    before = await kube.get(DEPLOYMENTS, NS, "helper")
    again = await reconcile(context, await kube.get(AGENTS, NS, "helper"))
    after = await kube.get(DEPLOYMENTS, NS, "helper")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert isinstance(again.outcome, Applied)


async def test_foreign_objects_are_not_taken_over(
    context: OperatorContext, kube: KubeClient
) -> None:
    await kube.create(
        CONFIG_MAPS,
        NS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "helper-config"}},
    )
    raw = await kube.create(AGENTS, NS, agent_body())
    result = await reconcile(context, raw)
    assert result.outcome == Blocked(
        "ResourceConflict",
        "ConfigMap team-a/helper-config exists and is not owned by this resource",
    )
    assert result.retry_after == 7
    assert ready_reason(result.status) == "ResourceConflict"
    foreign = await kube.get(CONFIG_MAPS, NS, "helper-config")
    assert "data" not in foreign


async def test_invalid_spec_is_not_retried(context: OperatorContext, kube: KubeClient) -> None:
    raw = await kube.create(AGENTS, NS, agent_body(maxSteps=0))  # no admission in the emulator
    result = await reconcile(context, raw)
    assert isinstance(result.outcome, Blocked)
    assert result.outcome.reason == "InvalidSpec"
    assert "maxSteps" in result.outcome.message
    assert result.retry_after is None


async def test_invalid_references(context: OperatorContext, kube: KubeClient) -> None:
    await kube.create(
        MCP_SERVERS,
        NS,
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "both"},
            "spec": {"url": "https://x", "stdio": {"command": "y"}},
        },
    )
    raw = await kube.create(AGENTS, NS, agent_body(tools=[{"mcpServerRef": {"name": "both"}}]))
    result = await reconcile(context, raw)
    assert isinstance(result.outcome, Blocked)
    assert result.outcome.reason == "InvalidReference"
    assert "MCPServer/both" in result.outcome.message


async def test_resilience_policy_is_rendered(context: OperatorContext, kube: KubeClient) -> None:
    await kube.create(
        RESILIENCE_POLICIES,
        NS,
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "ResiliencePolicy",
            "metadata": {"name": "strict"},
            "spec": {"llm": {"timeoutSeconds": 9}},
        },
    )
    raw = await kube.create(AGENTS, NS, agent_body(resiliencePolicyRef={"name": "strict"}))
    result = await reconcile(context, raw)
    assert isinstance(result.outcome, Applied)
    config = await kube.get(CONFIG_MAPS, NS, "helper-config")
    assert "timeoutSeconds: 9.0" in config["data"]["config.yaml"]


async def test_api_failures_are_retried(kube: KubeClient) -> None:
    await kube.close()  # every call now fails before reaching the server
    context = OperatorContext(settings=OperatorSettings(apply_retry_seconds=3), kube=KubeClient())
    result = await reconcile(context, agent_body() | {"metadata": {"name": "x", "namespace": NS}})
    assert isinstance(result.outcome, Blocked)
    assert result.outcome.reason == "ApplyFailed"
    assert result.retry_after == 3


def test_contains() -> None:
    assert contains({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}}, {"b": {"c": [1, {"d": 2}]}})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": {"b": 1}}, {"a": {"b": 2}})
    assert not contains({}, {"a": None})


async def test_deployment_status_flows_into_the_agent(
    context: OperatorContext, kube: KubeClient
) -> None:
    await kube.create(AGENTS, NS, agent_body())
    assert await reconcile_agent(context, NS, "helper") is None
    agent = await kube.get(AGENTS, NS, "helper")
    assert ready_reason(agent["status"]) == "RolloutInProgress"
    deployment = await kube.get(DEPLOYMENTS, NS, "helper")
    ready = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}
    await kube.patch(DEPLOYMENTS, NS, "helper", {"status": ready}, subresource="status")
    await reconcile_agent(context, NS, "helper")
    agent = await kube.get(AGENTS, NS, "helper")
    assert ready_reason(agent["status"]) == "DeploymentReady"
    assert agent["status"]["readyReplicas"] == 1
    version = agent["metadata"]["resourceVersion"]
    await reconcile_agent(context, NS, "helper")  # nothing new: no write
    assert (await kube.get(AGENTS, NS, "helper"))["metadata"]["resourceVersion"] == version
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == agent["metadata"]["uid"]
    assert await reconcile_agent(context, NS, "gone") is None
