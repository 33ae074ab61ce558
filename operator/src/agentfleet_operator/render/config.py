"""An Agent and what it references → the runtime config (:mod:`agentfleet_crds.contract`).
Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import yaml

from agentfleet_crds.contract import (
    SECRETS_MOUNT_DIR,
    AgentConfig,
    ResolvedMCPServer,
    ResolvedSecret,
    RuntimeConfig,
)
from agentfleet_crds.contract import resolve_mcp_server as contract_resolve_mcp_server
from agentfleet_crds.contract import secret_file as contract_secret_file
from agentfleet_crds.v1alpha1 import (
    Agent,
    MCPServer,
    ResiliencePolicy,
    ResiliencePolicySpec,
    Resource,
    SecretBinding,
)
from agentfleet_crds.v1alpha1.common import SecretKeyRef

#: libyaml's dumper when PyYAML has it (10x faster), else the pure-Python one: same output.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class MissingReference:
    """The Agent names resources that do not exist (yet)."""

    kind: str
    names: tuple[str, ...]

    @property
    def reason(self) -> str:
        return f"{self.kind}NotFound"

    @property
    def message(self) -> str:
        noun = self.kind if len(self.names) == 1 else f"{self.kind}s"
        return f"{noun} not found in the Agent's namespace: {', '.join(self.names)}"


def secret_file(ref: SecretKeyRef) -> str:
    """Where the runtime finds a Secret key: ``<SECRETS_MOUNT_DIR>/<secret>/<key>``."""
    return contract_secret_file(SECRETS_MOUNT_DIR, ref)


def resolve_mcp_server(
    server: MCPServer,
    allowed_tools: list[str] | None,
    cluster_domain: str,
    *,
    mesh_retries: bool = False,
) -> ResolvedMCPServer:
    """How the runtime reaches one MCPServer: the contract's resolution, in the cluster."""
    return contract_resolve_mcp_server(
        server,
        secrets_dir=SECRETS_MOUNT_DIR,
        allowed_tools=allowed_tools,
        in_cluster=True,
        cluster_domain=cluster_domain,
        mesh_retries=mesh_retries and server.spec.hosted is not None,
    )


def tool_allowlists(agent: Agent) -> dict[str, list[str] | None]:
    """MCPServer name → the tools the agent may call on it (``None``: all). A server named
    by several tool entries gets the union; one entry without a list allows all."""
    allowed: dict[str, list[str] | None] = {}
    for tool in agent.spec.tools:
        name = tool.mcp_server_ref.name
        if name in allowed and allowed[name] is None:
            continue
        if tool.allowed_tools is None:
            allowed[name] = None
        else:
            merged = [*(allowed.get(name) or []), *tool.allowed_tools]
            allowed[name] = list(dict.fromkeys(merged))
    return allowed


def tool_pins(agent: Agent) -> dict[str, dict[str, str]]:
    """MCPServer name → tool → the input-schema hash the agent pinned it to. A server
    named by several tool entries gets the union (a tool pinned twice: the first pin)."""
    pins: dict[str, dict[str, str]] = {}
    for tool in agent.spec.tools:
        merged = pins.setdefault(tool.mcp_server_ref.name, {})
        for name, digest in (tool.pins() or {}).items():
            merged.setdefault(name, digest)
    return pins


def build_agent_config(
    agent: Agent,
    mcp_servers: Mapping[str, MCPServer],
    policy: ResiliencePolicy | None,
    cluster_domain: str,
    *,
    secrets: Iterable[ResolvedSecret] = (),
    mesh_retried: Collection[str] = frozenset(),
) -> AgentConfig | MissingReference:
    """The runtime's view of one Agent, with every reference resolved. ``mesh_retried``
    names the MCPServers whose calls the service mesh retries (the runtime must not);
    ``secrets`` are the ones SecretBindings give it."""
    allowlists = tool_allowlists(agent)
    missing = tuple(sorted(name for name in allowlists if name not in mcp_servers))
    if missing:
        return MissingReference("MCPServer", missing)
    policy_ref = agent.spec.resilience_policy_ref
    if policy_ref is not None and (policy is None or policy.metadata.name != policy_ref.name):
        return MissingReference("ResiliencePolicy", (policy_ref.name,))

    pins = tool_pins(agent)
    resolved = [
        resolve_mcp_server(
            mcp_servers[name], allowed, cluster_domain, mesh_retries=name in mesh_retried
        ).model_copy(update={"pinned_tools": pins.get(name) or None})
        for name, allowed in allowlists.items()
    ]

    return AgentConfig(
        name=agent.metadata.name,
        namespace=agent.metadata.namespace,
        spec=agent.spec,
        mcp_servers=resolved,
        resilience=(
            policy.spec if policy is not None and policy_ref is not None else ResiliencePolicySpec()
        ),
        secrets=sorted(secrets, key=lambda s: s.name),
    )


def config_yaml(config: AgentConfig) -> str:
    """The ConfigMap's ``config.yaml``: a :class:`RuntimeConfig` holding this one agent.
    Deterministic (same config, same bytes), so its hash is stable."""
    document = RuntimeConfig(agents=[config]).to_manifest()
    return yaml.dump(
        document,
        Dumper=_DUMPER,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
    )


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def referenced_secrets(
    agent: Agent, mcp_servers: Iterable[ResolvedMCPServer], all_servers: Mapping[str, MCPServer]
) -> dict[str, set[str]]:
    """Secret name → keys the runtime pod must see mounted: model API keys, MCP headers,
    stdio MCP env."""
    refs: list[SecretKeyRef] = []
    for model in (agent.spec.model, *agent.spec.fallback_models):
        if model.api_key_secret_ref is not None:
            refs.append(model.api_key_secret_ref)
    for resolved in mcp_servers:
        server = all_servers[resolved.name]
        if server.spec.url is not None:
            refs.extend(h.secret_key_ref for h in server.spec.headers)
        if server.spec.stdio is not None:
            refs.extend(e.secret_key_ref for e in server.spec.stdio.env if e.secret_key_ref)
    secrets: dict[str, set[str]] = {}
    for ref in refs:
        secrets.setdefault(ref.name, set()).add(ref.key)
    return secrets


def configs_from_resources(
    resources: Iterable[Resource], cluster_domain: str = "cluster.local"
) -> list[AgentConfig]:
    """The runtime configs the operator would render for the Agents among ``resources``
    (one namespace's MCPServers, ResiliencePolicies and SecretBindings): the declared
    dependency map of ``examples/`` is drawn from them. Agents with a missing reference
    are left out."""
    from agentfleet_operator.render.secrets import bound_secrets

    items = list(resources)
    servers = {r.metadata.name: r for r in items if isinstance(r, MCPServer)}
    policies = {r.metadata.name: r for r in items if isinstance(r, ResiliencePolicy)}
    bindings = [r for r in items if isinstance(r, SecretBinding)]
    configs: list[AgentConfig] = []
    for agent in (r for r in items if isinstance(r, Agent)):
        ref = agent.spec.resilience_policy_ref
        config = build_agent_config(
            agent,
            servers,
            policies.get(ref.name) if ref is not None else None,
            cluster_domain,
            secrets=bound_secrets(agent.metadata.name, bindings).secrets.values(),
        )
        if isinstance(config, AgentConfig):
            configs.append(config)
    return configs
