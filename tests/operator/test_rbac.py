"""operator/rbac: every API call the operator (kopf included) makes in a scenario that walks
every reconcile path is allowed by the ClusterRole/Role, and the rules nobody exercised are
a short, known list."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import (
    AGENTS,
    MCP_SERVERS,
    RESILIENCE_POLICIES,
    SECRET_BINDINGS,
    SECRETS,
    SERVICES,
)
from agentfleet_operator.leader import LeaderElector
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator
from agentfleet_operator.testing.operator import running_operator
from agentfleet_operator.testing.waiting import eventually

RBAC = Path(__file__).parents[2] / "operator" / "rbac"
NS = "team-a"
API = "agentfleet.dev/v1alpha1"

#: Granted but not exercised by the scenario (each for a reason).
NOT_EXERCISED = (
    {
        ("policy.linkerd.io", "httproutes", verb)  # the scenario's mesh is Istio
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    }
    | {
        ("networking.istio.io", "destinationrules", "delete"),  # only when Istio goes away
        ("networking.istio.io", "virtualservices", "delete"),
        ("", "configmaps", "delete"),  # ConfigMaps and Services are never switched off
        ("", "services", "delete"),
        ("policy", "poddisruptionbudgets", "delete"),  # same path as HPAs, exercised there
        ("networking.k8s.io", "networkpolicies", "delete"),
    }
    | {
        # Patched by the same apply path as Deployments (which the scenario patches): only an
        # edit of one of these, or a spec change affecting them, patches them.
        (group, resource, "patch")
        for group, resource in (
            ("", "services"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("networking.k8s.io", "networkpolicies"),
            ("networking.istio.io", "virtualservices"),
            ("networking.istio.io", "destinationrules"),
        )
    }
)


def rules() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(RBAC.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") in {"ClusterRole", "Role"}:
                found.extend(doc["rules"])
    return found


def granted() -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def verb_of(request: Any) -> str:
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        if str(request.params.get("watch")) in {"true", "1"}:
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def operator_calls(emulator: KubernetesAPIEmulator) -> set[tuple[str, str, str]]:
    calls: set[tuple[str, str, str]] = set()
    for request in emulator.recorded_requests:
        agent = str(request.headers.get("User-Agent") or "")
        ours = agent.startswith(("agentfleet-operator", "kopf"))
        if not ours or request.resource is None or request.resource.plural is None:
            continue  # the test's own client, or discovery (allowed to every user)
        resource = str(request.resource.plural)
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        calls.add((str(request.resource.group or ""), resource, verb_of(request)))
    return calls


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.emulator(ready_deployments=True)
async def test_every_call_is_allowed(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    emulator.declare("networking.istio.io", "v1", "virtualservices", kind="VirtualService")
    emulator.declare("networking.istio.io", "v1", "destinationrules", kind="DestinationRule")
    async with running_operator(emulator, kube, mcp_probe_timeout_seconds=0.2) as context:
        elector = LeaderElector(
            context.kube, namespace=NS, name="lease", identity="a", lease_duration=3
        )
        assert await elector.try_acquire_or_renew()  # create
        assert await elector.try_acquire_or_renew()  # get + patch
        await elector.release()
        policy = {"mesh": {"retries": "mesh"}}
        await kube.create(RESILIENCE_POLICIES, NS, resource("ResiliencePolicy", "p", policy))
        hosted = {"hosted": {"image": "i"}, "resiliencePolicyRef": {"name": "p"}}
        await kube.create(MCP_SERVERS, NS, resource("MCPServer", "tools", hosted))
        deployment = {
            "autoscaling": {"enabled": True},
            "podDisruptionBudget": {"enabled": True},
            "networkPolicy": {"enabled": True},
        }
        spec = {
            "model": {"provider": "fake", "name": "m"},
            "tools": [{"mcpServerRef": {"name": "tools"}}],
            "resiliencePolicyRef": {"name": "p"},
            "deployment": deployment,
        }
        await kube.create(AGENTS, NS, resource("Agent", "helper", spec))
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
        await kube.create(SECRETS, NS, {**secret, "data": {"k": "dg=="}})
        binding = {
            "provider": "kubernetes",
            "agents": ["helper"],
            "secrets": [{"name": "x", "kubernetes": {"secretName": "s", "key": "k"}}],
        }
        await kube.create(SECRET_BINDINGS, NS, resource("SecretBinding", "b", binding))

        async def ready() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            conditions = (found.get("status") or {}).get("conditions") or []
            is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            return found if is_ready else None

        await eventually(ready, within=10, what="the Agent Ready")
        await kube.delete(SERVICES, NS, "helper")
        await eventually(lambda: kube.get_or_none(SERVICES, NS, "helper"), what="drift fixed")
        await kube.patch(
            AGENTS, NS, "helper", {"spec": {"deployment": {"autoscaling": {"enabled": False}}}}
        )
        await kube.patch(MCP_SERVERS, NS, "tools", {"spec": {"hosted": None, "url": "http://x"}})

        async def settled() -> bool:
            assert context.queue is not None
            await context.queue.wait_idle()
            return not context.queue.busy

        await asyncio.sleep(0.5)
        await eventually(settled, what="the queue idle")

    calls = operator_calls(emulator)
    allowed = granted()
    assert calls - allowed == set(), "calls the RBAC manifests do not allow"
    assert allowed - calls <= NOT_EXERCISED, "grants nothing needed: remove or exercise them"
    assert ("", "secrets", "get") in calls
    assert ("coordination.k8s.io", "leases", "patch") in calls
