"""Rendering an Agent: every object, field by field, plus golden files of a full agent.

Regenerate the golden files after an intended change with
``AGENTFLEET_UPDATE_GOLDEN=1 uv run pytest tests/operator/test_render.py``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_crds.contract import RuntimeConfig
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy
from agentfleet_operator.render import (
    MissingReference,
    ObjectRef,
    RenderedAgent,
    render_agent,
)
from agentfleet_operator.render.agent import secret_volume_name
from agentfleet_operator.settings import OperatorSettings

GOLDEN = Path(__file__).parent / "golden"
UID = "5f1c3a5e-0000-4000-8000-000000000001"
SETTINGS = OperatorSettings()
LABELS = {
    "app.kubernetes.io/name": "agentfleet-agent",
    "app.kubernetes.io/instance": "helper",
    "app.kubernetes.io/component": "agent",
    "app.kubernetes.io/managed-by": "agentfleet-operator",
    "app.kubernetes.io/part-of": "agentfleet",
    "agentfleet.dev/agent": "helper",
}
SELECTOR = {"app.kubernetes.io/name": "agentfleet-agent", "app.kubernetes.io/instance": "helper"}
OWNER = {
    "apiVersion": "agentfleet.dev/v1alpha1",
    "kind": "Agent",
    "name": "helper",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def make_agent(
    *,
    tools: list[dict[str, Any]] | None = None,
    deployment: dict[str, Any] | None = None,
    uid: str | None = UID,
    **spec: Any,
) -> Agent:
    meta: dict[str, Any] = {"name": "helper", "namespace": "team-a", "generation": 1}
    if uid:
        meta["uid"] = uid
    return Agent.model_validate(
        {
            "metadata": meta,
            "spec": {
                "model": {
                    "provider": "anthropic",
                    "name": "claude-sonnet-4-5",
                    "apiKeySecretRef": {"name": "llm-keys", "key": "anthropic"},
                },
                "tools": tools or [],
                "deployment": deployment or {},
                **spec,
            },
        }
    )


def make_mcp(name: str, spec: dict[str, Any]) -> MCPServer:
    return MCPServer.model_validate(
        {"metadata": {"name": name, "namespace": "team-a"}, "spec": spec}
    )


URL_SERVER = make_mcp(
    "search",
    {
        "url": "https://search.example.com/mcp",
        "headers": [
            {"name": "Authorization", "secretKeyRef": {"name": "search-auth", "key": "token"}}
        ],
        "timeouts": {"callSeconds": 15},
    },
)
HOSTED_SERVER = make_mcp("files", {"hosted": {"image": "ghcr.io/x/files:1", "port": 9000}})
STDIO_SERVER = make_mcp(
    "clock",
    {
        "stdio": {
            "command": "python",
            "args": ["-m", "clock"],
            "env": [
                {"name": "TZ", "value": "UTC"},
                {"name": "CLOCK_TOKEN", "secretKeyRef": {"name": "clock", "key": "token"}},
            ],
        }
    },
)
SERVERS = {s.metadata.name: s for s in (URL_SERVER, HOSTED_SERVER, STDIO_SERVER)}


def rendered(agent: Agent, policy: ResiliencePolicy | None = None) -> RenderedAgent:
    result = render_agent(agent, SERVERS, policy, SETTINGS)
    assert isinstance(result, RenderedAgent), result
    return result


def container(result: RenderedAgent) -> dict[str, Any]:
    (only,) = result.deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def full_agent() -> Agent:
    return make_agent(
        tools=[
            {"mcpServerRef": {"name": "search"}, "allowedTools": ["web_search"]},
            {"mcpServerRef": {"name": "files"}},
            {"mcpServerRef": {"name": "clock"}},
        ],
        resiliencePolicyRef={"name": "strict"},
        deployment={
            "replicas": 3,
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
            "networkPolicy": {"enabled": True, "allowedNamespaces": ["gateway", "team-a"]},
        },
        fallbackModels=[
            {
                "provider": "openai",
                "name": "gpt-4.1-mini",
                "apiKeySecretRef": {"name": "llm-keys", "key": "openai"},
            }
        ],
    )


STRICT = ResiliencePolicy.model_validate(
    {"metadata": {"name": "strict", "namespace": "team-a"}, "spec": {"http": {"timeoutSeconds": 5}}}
)


# --- golden files ----------------------------------------------------------------------


def golden_documents() -> dict[str, Any]:
    result = rendered(full_agent(), STRICT)
    objects = copy.deepcopy(result.objects)
    objects[0]["data"]["config.yaml"] = "<the text of config.yaml>"
    return {"config.yaml": yaml.safe_load(result.config_yaml), "objects.yaml": objects}


@pytest.mark.parametrize("name", ["config.yaml", "objects.yaml"])
def test_golden(name: str) -> None:
    path = GOLDEN / name
    actual = golden_documents()[name]
    if os.environ.get("AGENTFLEET_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(actual, sort_keys=False), encoding="utf-8")
    assert actual == yaml.safe_load(path.read_text(encoding="utf-8"))


# --- metadata --------------------------------------------------------------------------


def test_every_object_is_labelled_named_and_owned() -> None:
    result = rendered(full_agent(), STRICT)
    kinds = [o["kind"] for o in result.objects]
    assert kinds == [
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    for obj in result.objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["labels"] == LABELS
        assert meta["ownerReferences"] == [OWNER]
        assert meta["name"] == ("helper-config" if obj["kind"] == "ConfigMap" else "helper")
    assert result.absent == []


def test_no_owner_reference_without_a_uid() -> None:
    result = rendered(make_agent(uid=None))
    assert all("ownerReferences" not in o["metadata"] for o in result.objects)


# --- runtime config --------------------------------------------------------------------


def test_config_map_holds_the_runtime_config() -> None:
    result = rendered(full_agent(), STRICT)
    text = result.config_map["data"]["config.yaml"]
    assert text == result.config_yaml
    config = RuntimeConfig.model_validate(yaml.safe_load(text))  # what the runtime loads
    (agent,) = config.agents
    assert agent == result.config
    assert agent.name == "helper"
    assert agent.namespace == "team-a"
    assert agent.resilience.http.timeout_seconds == 5
    assert agent.spec.model.api_key_secret_ref is not None


def test_url_server_resolution() -> None:
    config = rendered(full_agent(), STRICT).config
    search = next(s for s in config.mcp_servers if s.name == "search")
    assert search.transport == "streamable-http"
    assert search.url == "https://search.example.com/mcp"
    assert search.header_files == {"Authorization": "/var/run/agentfleet/secrets/search-auth/token"}
    assert search.allowed_tools == ["web_search"]
    assert search.timeouts.call_seconds == 15
    assert search.command is None


def test_hosted_server_resolution() -> None:
    config = rendered(full_agent(), STRICT).config
    files = next(s for s in config.mcp_servers if s.name == "files")
    assert files.transport == "streamable-http"
    assert files.url == "http://files-mcp.team-a.svc.cluster.local:9000/mcp"
    assert files.header_files == {}
    assert files.allowed_tools is None


def test_hosted_server_uses_the_cluster_domain() -> None:
    agent = make_agent(tools=[{"mcpServerRef": {"name": "files"}}])
    result = render_agent(agent, SERVERS, None, OperatorSettings(cluster_domain="corp.internal"))
    assert isinstance(result, RenderedAgent)
    assert result.config.mcp_servers[0].url == "http://files-mcp.team-a.svc.corp.internal:9000/mcp"
    assert result.endpoint == "http://helper.team-a.svc.corp.internal"


def test_stdio_server_resolution() -> None:
    config = rendered(full_agent(), STRICT).config
    clock = next(s for s in config.mcp_servers if s.name == "clock")
    assert clock.transport == "stdio"
    assert clock.command == "python"
    assert clock.args == ["-m", "clock"]
    assert clock.env == {"TZ": "UTC"}
    assert clock.env_files == {"CLOCK_TOKEN": "/var/run/agentfleet/secrets/clock/token"}
    assert clock.url is None


def test_repeated_server_refs_merge_their_allowlists() -> None:
    agent = make_agent(
        tools=[
            {"mcpServerRef": {"name": "search"}, "allowedTools": ["a"]},
            {"mcpServerRef": {"name": "search"}, "allowedTools": ["b", "a"]},
        ]
    )
    (search,) = rendered(agent).config.mcp_servers
    assert search.allowed_tools == ["a", "b"]
    unrestricted = make_agent(
        tools=[
            {"mcpServerRef": {"name": "search"}, "allowedTools": ["a"]},
            {"mcpServerRef": {"name": "search"}},
        ]
    )
    assert rendered(unrestricted).config.mcp_servers[0].allowed_tools is None


def test_default_resilience_without_a_policy_ref() -> None:
    config = rendered(make_agent(), STRICT).config  # a policy nobody asked for is ignored
    assert config.resilience.http.timeout_seconds == 30.0


def test_missing_mcp_servers() -> None:
    agent = make_agent(tools=[{"mcpServerRef": {"name": n}} for n in ("search", "nope", "gone")])
    result = render_agent(agent, SERVERS, None, SETTINGS)
    assert result == MissingReference("MCPServer", ("gone", "nope"))
    assert isinstance(result, MissingReference)
    assert result.reason == "MCPServerNotFound"
    assert "gone, nope" in result.message


def test_missing_resilience_policy() -> None:
    agent = make_agent(resiliencePolicyRef={"name": "strict"})
    result = render_agent(agent, SERVERS, None, SETTINGS)
    assert isinstance(result, MissingReference)
    assert result.reason == "ResiliencePolicyNotFound"


# --- config hash -----------------------------------------------------------------------


def test_config_hash_is_the_config_map_annotation_and_stable() -> None:
    first, second = rendered(full_agent(), STRICT), rendered(full_agent(), STRICT)
    annotations = first.config_map["metadata"]["annotations"]
    assert annotations == {"agentfleet.dev/config-hash": first.config_hash}
    # live reload (the default): the runtimes apply a changed config, pods do not roll
    assert "annotations" not in first.deployment["spec"]["template"]["metadata"]
    assert len(first.config_hash) == 64
    assert first.config_hash == second.config_hash
    assert first.config_yaml == second.config_yaml


def test_rollout_mode_puts_the_hash_on_the_pod_template() -> None:
    settings = OperatorSettings(config_reload="rollout")
    result = render_agent(full_agent(), SERVERS, STRICT, settings)
    assert isinstance(result, RenderedAgent)
    annotations = result.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"agentfleet.dev/config-hash": result.config_hash}


def test_config_hash_changes_iff_the_config_changes() -> None:
    base = rendered(make_agent()).config_hash
    assert rendered(make_agent(systemPrompt="Different.")).config_hash != base
    assert rendered(make_agent(tools=[{"mcpServerRef": {"name": "files"}}])).config_hash != base
    # Deployment-only knobs are part of the spec the runtime sees, so they count too...
    assert rendered(make_agent(deployment={"replicas": 2})).config_hash != base
    # ...but the operator's own settings (image, environment) do not touch the config.
    other = render_agent(make_agent(), {}, None, OperatorSettings(runtime_image="img:2"))
    assert isinstance(other, RenderedAgent)
    assert other.config_hash == base
    assert container(other)["image"] == "img:2"


# --- deployment ------------------------------------------------------------------------


def test_deployment_basics() -> None:
    result = rendered(make_agent(deployment={"replicas": 2, "imagePullPolicy": "Always"}))
    spec = result.deployment["spec"]
    assert result.deployment["apiVersion"] == "apps/v1"
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": SELECTOR}
    assert spec["template"]["metadata"]["labels"] == LABELS
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    c = container(result)
    assert c["image"] == "ghcr.io/agentfleet/runtime:0.1.0"
    assert c["imagePullPolicy"] == "Always"
    assert c["command"] == ["agentfleet"]
    assert c["args"] == ["serve", "--config", "/etc/agentfleet/config.yaml"]
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["AGENTFLEET_HOST"] == "0.0.0.0"
    assert env["AGENTFLEET_PORT"] == "8000"
    assert env["AGENTFLEET_CONFIG_FILE"] == "/etc/agentfleet/config.yaml"
    assert env["AGENTFLEET_CLUSTER_MODE"] == "true"
    assert env["AGENTFLEET_ENVIRONMENT"] == "production"


def test_agent_image_wins_over_the_default() -> None:
    assert container(rendered(make_agent(deployment={"image": "mine:1"})))["image"] == "mine:1"


def test_runtime_env_from_settings() -> None:
    settings = OperatorSettings(
        runtime_env={"AGENTFLEET_REDIS_URL": "redis://r:6379", "AGENTFLEET_HOST": "x"}
    )
    result = render_agent(make_agent(), {}, None, settings)
    assert isinstance(result, RenderedAgent)
    env = [(e["name"], e.get("value")) for e in container(result)["env"]]
    assert ("AGENTFLEET_REDIS_URL", "redis://r:6379") in env
    assert ("AGENTFLEET_HOST", "0.0.0.0") in env  # the operator's own variables win
    assert ("AGENTFLEET_HOST", "x") not in env


def test_probes() -> None:
    c = container(rendered(make_agent()))
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz/live", "port": "http"}
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 60


def test_restricted_security_context() -> None:
    result = rendered(make_agent())
    pod = result.deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container(result)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_volumes_and_secret_mounts() -> None:
    result = rendered(full_agent(), STRICT)
    pod = result.deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container(result)["volumeMounts"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
    assert mounts["tmp"] == {"name": "tmp", "mountPath": "/tmp"}
    assert volumes["config"]["configMap"]["name"] == "helper-config"
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/agentfleet", "readOnly": True}
    expected = {
        "llm-keys": ["anthropic", "openai"],  # primary and fallback model keys
        "search-auth": ["token"],  # url server header
        "clock": ["token"],  # stdio server env
    }
    secret_volumes = {v["secret"]["secretName"]: v for v in pod["volumes"] if "secret" in v}
    assert set(secret_volumes) == set(expected)
    for secret, keys in expected.items():
        volume = secret_volumes[secret]
        assert volume["name"] == secret_volume_name(secret)
        assert volume["secret"]["items"] == [{"key": k, "path": k} for k in keys]
        assert mounts[volume["name"]] == {
            "name": volume["name"],
            "mountPath": f"/var/run/agentfleet/secrets/{secret}",
            "readOnly": True,
        }


def test_no_secret_volumes_without_secret_refs() -> None:
    agent = Agent.model_validate(
        {
            "metadata": {"name": "helper", "namespace": "team-a"},
            "spec": {"model": {"provider": "fake", "name": "m"}},
        }
    )
    result = rendered(agent)
    names = [v["name"] for v in result.deployment["spec"]["template"]["spec"]["volumes"]]
    assert names == ["tmp", "config"]


def test_secret_volume_names_are_dns_labels() -> None:
    name = secret_volume_name("a.very.long.secret.name" * 8)
    assert len(name) <= 63
    assert name == secret_volume_name("a.very.long.secret.name" * 8)
    assert name.replace("-", "").isalnum()


# --- service ---------------------------------------------------------------------------


def test_service() -> None:
    result = rendered(make_agent())
    assert result.service["spec"] == {
        "type": "ClusterIP",
        "selector": SELECTOR,
        "ports": [{"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}],
    }
    assert result.endpoint == "http://helper.team-a.svc.cluster.local"


# --- optional objects ------------------------------------------------------------------


def test_optional_objects_only_when_enabled() -> None:
    result = rendered(make_agent())
    assert (result.hpa, result.pdb, result.network_policy) == (None, None, None)
    assert [o["kind"] for o in result.objects] == ["ConfigMap", "Service", "Deployment"]
    assert result.absent == [
        ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", "team-a", "helper"),
        ObjectRef("policy/v1", "PodDisruptionBudget", "team-a", "helper"),
        ObjectRef("networking.k8s.io/v1", "NetworkPolicy", "team-a", "helper"),
    ]


def test_hpa_takes_over_the_replica_count() -> None:
    result = rendered(full_agent(), STRICT)
    assert "replicas" not in result.deployment["spec"]
    assert result.hpa is not None
    assert result.hpa["apiVersion"] == "autoscaling/v2"
    assert result.hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "helper"},
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
    }


def test_pdb() -> None:
    result = rendered(full_agent(), STRICT)
    assert result.pdb is not None
    assert result.pdb["apiVersion"] == "policy/v1"
    assert result.pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_network_policy() -> None:
    result = rendered(full_agent(), STRICT)
    assert result.network_policy is not None
    assert result.network_policy["apiVersion"] == "networking.k8s.io/v1"
    assert result.network_policy["spec"] == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {"podSelector": {}},  # the agent's own namespace
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "gateway"}
                        }
                    },
                ],
                "ports": [{"protocol": "TCP", "port": 8000}],
            }
        ],
    }


def test_objects_validate_against_the_kubernetes_schemas() -> None:
    """Strict OpenAPI validation of every rendered kind (skipped unless the optional
    ``kubernetes-validate`` dev tool is installed)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in rendered(full_agent(), STRICT).objects:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)
