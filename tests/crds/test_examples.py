"""Every example manifest is valid for the models and for the CRD schemas, the API server's
defaulting agrees with the models', and the examples' references resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentfleet_crds.manifests import load_manifest_files, parse_resource
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy, SecretBinding
from agentfleet_crds.v1alpha1.agent import AgentStatus
from agentfleet_crds.v1alpha1.common import Condition, ConditionStatus, ObjectMeta

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def test_example_validates_against_the_models(example: dict[str, Any]) -> None:
    resource = parse_resource(example, "example")
    assert resource.kind == example["kind"]
    assert resource.metadata.name == example["metadata"]["name"]


def test_example_is_admitted_by_the_crd_schema(example: dict[str, Any], admission: Any) -> None:
    assert admission.errors(example) == []


def test_example_round_trips_through_the_model(example: dict[str, Any]) -> None:
    resource = parse_resource(example)
    manifest = resource.to_manifest()
    again = type(resource).model_validate(manifest)
    assert again == resource
    assert again.to_manifest() == manifest


def test_api_server_defaulting_equals_model_defaulting(
    example: dict[str, Any], admission: Any
) -> None:
    """What ``kubectl get -o yaml`` shows after apply is what the operator's model reads."""
    defaulted = admission.defaulted(example)
    assert defaulted["spec"] == parse_resource(example).to_manifest()["spec"]


def test_the_model_dump_of_an_example_is_admitted(example: dict[str, Any], admission: Any) -> None:
    assert admission.errors(parse_resource(example).to_manifest()) == []


def test_minimal_manifests_default_like_the_models(admission: Any) -> None:
    minimal: list[dict[str, Any]] = [
        {"kind": "Agent", "spec": {"model": {"provider": "fake", "name": "offline"}}},
        {"kind": "MCPServer", "spec": {"hosted": {"image": "example/mcp:1"}}},
        {"kind": "MCPServer", "spec": {"stdio": {"command": "server"}}},
        {"kind": "ResiliencePolicy"},
        {
            "kind": "SecretBinding",
            "spec": {
                "provider": "vault",
                "secrets": [{"name": "token", "remote": {"key": "kv/data/app"}}],
                "agents": ["a"],
            },
        },
    ]
    for document in minimal:
        document = {"apiVersion": "agentfleet.dev/v1alpha1", "metadata": {"name": "x"}, **document}
        assert admission.errors(document) == [], document["kind"]
        assert (
            admission.defaulted(document)["spec"] == parse_resource(document).to_manifest()["spec"]
        )


def test_a_fully_populated_agent_round_trips_and_its_status_is_admitted(admission: Any) -> None:
    agent = Agent.model_validate(
        {
            "metadata": {"name": "full", "namespace": "team-a", "labels": {"tier": "gold"}},
            "spec": {
                "model": {
                    "provider": "openai",
                    "name": "llama-3.1-70b",
                    "baseUrl": "http://vllm.models.svc:8000/v1",
                    "temperature": 0.7,
                },
                "tools": [{"mcpServerRef": {"name": "crm"}, "allowedTools": ["lookup"]}],
                "resiliencePolicyRef": {"name": "standard"},
            },
        }
    )
    agent.metadata = ObjectMeta.model_validate(
        {**agent.metadata.model_dump(), "generation": 3, "uid": "1234"}
    )
    agent.status = AgentStatus(
        observed_generation=3,
        conditions=[
            Condition(
                type="Ready",
                status=ConditionStatus.TRUE,
                reason="DeploymentAvailable",
                message="2/2 replicas ready",
                last_transition_time=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
                observed_generation=3,
            )
        ],
        replicas=2,
        ready_replicas=2,
        endpoint="http://full.team-a.svc:8000",
        config_hash="abc123",
    )
    manifest = agent.to_manifest()
    assert manifest["status"]["conditions"][0]["lastTransitionTime"] == "2026-11-01T12:00:00Z"
    assert Agent.model_validate(manifest) == agent
    assert admission.errors(manifest) == []


def test_each_example_file_says_whether_it_is_for_local_dev_or_a_cluster() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in files} >= {
        "demo-agent.yaml",
        "support-agent.yaml",
        "resilience-policy.yaml",
        "secret-binding.yaml",
        "secret-binding-aws.yaml",
    }
    readme = (EXAMPLES / "README.md").read_text()
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith(("# LOCAL DEVELOPMENT", "# CLUSTER")), path.name
        assert f"`{path.name}`" in readme, f"examples/README.md does not explain {path.name}"


def test_demo_agent_is_offline_with_the_stdio_demo_server() -> None:
    resources = load_manifest_files([EXAMPLES / "demo-agent.yaml"])
    agents = [r for r in resources if isinstance(r, Agent)]
    servers = {r.metadata.name: r for r in resources if isinstance(r, MCPServer)}
    (agent,) = agents
    assert agent.spec.model.provider == "fake"
    assert agent.spec.model.api_key_secret_ref is None
    assert agent.spec.fallback_models == []
    (tool,) = agent.spec.tools
    server = servers[tool.mcp_server_ref.name]
    assert server.spec.stdio is not None
    assert server.spec.stdio.command == "agentfleet"
    assert server.spec.stdio.args == ["mcp", "demo", "--transport", "stdio"]
    assert server.spec.url is None
    assert server.spec.hosted is None


def test_support_agent_shows_the_production_features() -> None:
    resources = load_manifest_files([EXAMPLES / "support-agent.yaml"])
    (agent,) = [r for r in resources if isinstance(r, Agent)]
    servers = {r.metadata.name: r for r in resources if isinstance(r, MCPServer)}
    spec = agent.spec
    assert spec.model.provider == "anthropic"
    assert spec.model.api_key_secret_ref is not None
    assert [m.provider for m in spec.fallback_models] == ["openai"]
    assert spec.resilience_policy_ref is not None
    assert spec.deployment.autoscaling.enabled
    assert spec.deployment.pod_disruption_budget.enabled
    assert spec.deployment.network_policy.enabled
    remote = [s for s in servers.values() if s.spec.url is not None]
    hosted = [s for s in servers.values() if s.spec.hosted is not None]
    assert remote, "a remote MCP server"
    assert remote[0].spec.headers, "with headers from a Secret"
    assert hosted, "a hosted MCP server"
    assert {t.mcp_server_ref.name for t in spec.tools} == set(servers)


def _secret_refs(resource: Any) -> list[tuple[str, str]]:
    """Every (secret name, key) a resource reads from a Kubernetes Secret."""
    refs: list[tuple[str, str]] = []
    if isinstance(resource, Agent):
        for model in [resource.spec.model, *resource.spec.fallback_models]:
            if model.api_key_secret_ref is not None:
                refs.append((model.api_key_secret_ref.name, model.api_key_secret_ref.key))
    if isinstance(resource, MCPServer):
        spec = resource.spec
        refs += [(h.secret_key_ref.name, h.secret_key_ref.key) for h in spec.headers]
        env = [*(spec.hosted.env if spec.hosted else []), *(spec.stdio.env if spec.stdio else [])]
        refs += [(e.secret_key_ref.name, e.secret_key_ref.key) for e in env if e.secret_key_ref]
    if isinstance(resource, SecretBinding):
        refs += [
            (s.kubernetes.secret_name, s.kubernetes.key)
            for s in resource.spec.secrets
            if s.kubernetes
        ]
    return refs


def test_example_references_resolve(examples: list[tuple[str, int, dict[str, Any]]]) -> None:
    resources = [
        parse_resource(doc) for _, _, doc in examples if doc["apiVersion"].startswith("agentfleet")
    ]
    names = {(r.kind, r.metadata.name) for r in resources}
    secret_keys = {
        (doc["metadata"]["name"], key)
        for _, _, doc in examples
        if doc["kind"] == "Secret"
        for key in {**doc.get("data", {}), **doc.get("stringData", {})}
    }
    unresolved: list[str] = []
    for resource in resources:
        where = f"{resource.kind}/{resource.metadata.name}"
        if isinstance(resource, Agent):
            for tool in resource.spec.tools:
                if ("MCPServer", tool.mcp_server_ref.name) not in names:
                    unresolved.append(f"{where}: MCPServer {tool.mcp_server_ref.name}")
            ref = resource.spec.resilience_policy_ref
            if ref is not None and ("ResiliencePolicy", ref.name) not in names:
                unresolved.append(f"{where}: ResiliencePolicy {ref.name}")
        if isinstance(resource, SecretBinding):
            for agent in resource.spec.agents:
                if ("Agent", agent) not in names:
                    unresolved.append(f"{where}: Agent {agent}")
        for secret in _secret_refs(resource):
            if secret not in secret_keys:
                unresolved.append(f"{where}: Secret key {secret}")
    assert unresolved == []
    assert any(isinstance(r, ResiliencePolicy) for r in resources)


def test_example_secrets_hold_placeholders_only(
    examples: list[tuple[str, int, dict[str, Any]]],
) -> None:
    secrets = [doc for _, _, doc in examples if doc["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert secret["apiVersion"] == "v1"
        assert secret["type"] == "Opaque"
        assert "data" not in secret, "use stringData with visible placeholders"
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{secret['metadata']['name']}.{key} looks real"
