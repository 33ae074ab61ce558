"""An Agent and what it references → the runtime config (:mod:`agentfleet_crds.contract`).
Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml

from agentfleet_crds.contract import (
    SECRETS_MOUNT_DIR,
    AgentConfig,
    ResolvedMCPServer,
    RuntimeConfig,
)
from agentfleet_crds.v1alpha1 import (
    Agent,
    MCPServer,
    MCPTransport,
    ResiliencePolicy,
    ResiliencePolicySpec,
)
from agentfleet_crds.v1alpha1.common import SecretKeyRef
from agentfleet_operator.render.meta import hosted_mcp_service_name, service_host


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
    return f"{SECRETS_MOUNT_DIR}/{ref.name}/{ref.key}"


def resolve_mcp_server(
    server: MCPServer, allowed_tools: list[str] | None, cluster_domain: str
) -> ResolvedMCPServer:
    """How the runtime reaches one MCPServer."""
    spec = server.spec
    name = server.metadata.name
    if spec.url is not None:
        return ResolvedMCPServer(
            name=name,
            transport=MCPTransport.STREAMABLE_HTTP,
            url=spec.url,
            header_files={h.name: secret_file(h.secret_key_ref) for h in spec.headers},
            timeouts=spec.timeouts,
            allowed_tools=allowed_tools,
        )
    if spec.hosted is not None:
        service = hosted_mcp_service_name(name)
        host = service_host(service, server.metadata.namespace, cluster_domain)
        return ResolvedMCPServer(
            name=name,
            transport=MCPTransport.STREAMABLE_HTTP,
            url=f"http://{host}:{spec.hosted.port}{spec.hosted.path}",
            timeouts=spec.timeouts,
            allowed_tools=allowed_tools,
        )
    assert spec.stdio is not None  # the model guarantees exactly one shape
    return ResolvedMCPServer(
        name=name,
        transport=MCPTransport.STDIO,
        command=spec.stdio.command,
        args=list(spec.stdio.args),
        env={e.name: e.value for e in spec.stdio.env if e.value is not None},
        env_files={
            e.name: secret_file(e.secret_key_ref)
            for e in spec.stdio.env
            if e.secret_key_ref is not None
        },
        timeouts=spec.timeouts,
        allowed_tools=allowed_tools,
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


def build_agent_config(
    agent: Agent,
    mcp_servers: Mapping[str, MCPServer],
    policy: ResiliencePolicy | None,
    cluster_domain: str,
) -> AgentConfig | MissingReference:
    """The runtime's view of one Agent, with every reference resolved."""
    allowlists = tool_allowlists(agent)
    missing = tuple(sorted(name for name in allowlists if name not in mcp_servers))
    if missing:
        return MissingReference("MCPServer", missing)
    policy_ref = agent.spec.resilience_policy_ref
    if policy_ref is not None and (policy is None or policy.metadata.name != policy_ref.name):
        return MissingReference("ResiliencePolicy", (policy_ref.name,))

    resolved = [
        resolve_mcp_server(mcp_servers[name], allowed, cluster_domain)
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
    )


def config_yaml(config: AgentConfig) -> str:
    """The ConfigMap's ``config.yaml``: a :class:`RuntimeConfig` holding this one agent.
    Deterministic (same config, same bytes), so its hash is stable."""
    document = RuntimeConfig(agents=[config]).to_manifest()
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, default_flow_style=False)


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
