"""The real kopf operator against the emulated Kubernetes API over HTTP: create, update,
missing references, and Deployment readiness flipping the Agent's Ready condition."""

from __future__ import annotations

from typing import Any

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import (
    AGENTS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    MCP_SERVERS,
    SERVICES,
)
from agentfleet_operator.render.meta import CONFIG_HASH_ANNOTATION
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator
from agentfleet_operator.testing.operator import running_operator
from agentfleet_operator.testing.waiting import eventually

NS = "team-a"


def mcp_server(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name},
        "spec": spec,
    }


def agent(name: str, tools: list[str], prompt: str = "Be brief.") -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "provider": "openai",
                "name": "gpt-4.1-mini",
                "apiKeySecretRef": {"name": "llm-keys", "key": "openai"},
            },
            "systemPrompt": prompt,
            "tools": [{"mcpServerRef": {"name": t}} for t in tools],
        },
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


async def test_agent_lifecycle(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    async with running_operator(emulator, kube):
        await kube.create(
            MCP_SERVERS,
            NS,
            mcp_server(
                "search",
                {
                    "url": "https://search.example.com/mcp",
                    "headers": [
                        {"name": "Authorization", "secretKeyRef": {"name": "mcp", "key": "t"}}
                    ],
                },
            ),
        )
        created = await kube.create(AGENTS, NS, agent("helper", ["search"]))
        uid = created["metadata"]["uid"]

        # Create → the owned objects exist, owned by the Agent, and the status says so.
        async def reconciled() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            return found if (found.get("status") or {}).get("observedGeneration") == 1 else None

        helper = await eventually(reconciled, what="the first reconcile")
        deployment = await kube.get(DEPLOYMENTS, NS, "helper")
        service = await kube.get(SERVICES, NS, "helper")
        config = await kube.get(CONFIG_MAPS, NS, "helper-config")
        for owned in (deployment, service, config):
            (ref,) = owned["metadata"]["ownerReferences"]
            assert ref == {
                "apiVersion": "agentfleet.dev/v1alpha1",
                "kind": "Agent",
                "name": "helper",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        assert "Be brief." in config["data"]["config.yaml"]
        assert "/var/run/agentfleet/secrets/mcp/t" in config["data"]["config.yaml"]
        status = helper["status"]
        first_hash = config["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        assert status["configHash"] == first_hash
        assert status["endpoint"] == "http://helper.team-a.svc.cluster.local"
        assert [c["type"] for c in status["conditions"]] == ["Ready", "Reconciling", "Degraded"]
        assert condition(helper, "Ready")["status"] == "False"
        assert condition(helper, "Ready")["reason"] == "RolloutInProgress"
        assert condition(helper, "Reconciling")["status"] == "True"
        assert all(c["observedGeneration"] == 1 for c in status["conditions"])

        # The Deployment controller (emulated here) reports ready replicas → Ready=True.
        await kube.patch(
            DEPLOYMENTS,
            NS,
            "helper",
            {
                "status": {
                    "observedGeneration": deployment["metadata"]["generation"],
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "readyReplicas": 1,
                    "availableReplicas": 1,
                }
            },
            subresource="status",
        )

        async def ready() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            return found if condition(found, "Ready").get("status") == "True" else None

        helper = await eventually(ready, what="Ready=True")
        assert condition(helper, "Ready")["reason"] == "DeploymentReady"
        assert helper["status"]["readyReplicas"] == 1
        assert condition(helper, "Reconciling")["status"] == "False"

        # Update the spec → new generation, new config, new hash, pods roll.
        await kube.patch(AGENTS, NS, "helper", {"spec": {"systemPrompt": "Be thorough."}})

        async def rerendered() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            return found if (found.get("status") or {}).get("observedGeneration") == 2 else None

        helper = await eventually(rerendered, what="the update's reconcile")
        config = await kube.get(CONFIG_MAPS, NS, "helper-config")
        deployment = await kube.get(DEPLOYMENTS, NS, "helper")
        assert "Be thorough." in config["data"]["config.yaml"]
        new_hash = config["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        assert new_hash != first_hash
        assert helper["status"]["configHash"] == new_hash
        # live reload: the runtimes pick the new config up, the pods do not roll
        assert "annotations" not in deployment["spec"]["template"]["metadata"]
        assert deployment["metadata"]["generation"] == 1

        # A missing MCPServer → Ready=False MCPServerNotFound, nothing rendered...
        await kube.create(AGENTS, NS, agent("orphan", ["search", "missing"]))

        async def blocked() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "orphan")
            return found if condition(found, "Ready").get("reason") else None

        orphan = await eventually(blocked, what="the orphan's status")
        assert condition(orphan, "Ready")["status"] == "False"
        assert condition(orphan, "Ready")["reason"] == "MCPServerNotFound"
        assert "missing" in condition(orphan, "Ready")["message"]
        assert condition(orphan, "Degraded")["status"] == "True"
        assert orphan["status"]["observedGeneration"] == 1
        assert await kube.get_or_none(DEPLOYMENTS, NS, "orphan") is None

        # ...until it appears: the retry picks it up.
        await kube.create(MCP_SERVERS, NS, mcp_server("missing", {"stdio": {"command": "t"}}))

        async def recovered() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "orphan")
            return found if condition(found, "Degraded").get("status") == "False" else None

        orphan = await eventually(recovered, what="the orphan's recovery")
        assert condition(orphan, "Ready")["reason"] == "RolloutInProgress"
        assert await kube.get_or_none(DEPLOYMENTS, NS, "orphan") is not None
