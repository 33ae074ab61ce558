"""Where agents come from at start-up: the runtime config file the operator renders
(cluster), or Agent/MCPServer/ResiliencePolicy manifests (``agentfleet dev -f``) resolved
the way the operator would resolve them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from agentfleet_crds.contract import (
    AgentConfig,
    ResolvedMCPServer,
    RuntimeConfig,
    UnresolvableError,
    resolve_mcp_server,
)
from agentfleet_crds.manifests import ManifestError, describe_validation_error
from agentfleet_crds.v1alpha1 import (
    Agent,
    AgentSpec,
    MCPServer,
    ResiliencePolicy,
    ResiliencePolicySpec,
    Resource,
)
from agentfleet_runtime.errors import InvalidRequestError


class ConfigError(ValueError):
    """Start-up configuration that cannot be used; ``str()`` says what and where."""


def load_runtime_config(path: Path) -> RuntimeConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the runtime config: {exc}") from exc
    return parse_runtime_config(text, origin=str(path))


def parse_runtime_config(text: str, *, origin: str) -> RuntimeConfig:
    """The runtime config in ``text`` (YAML or JSON); :class:`ConfigError` names the
    field that is wrong. ``origin``: where the text comes from, for the message."""
    try:
        data = yaml.safe_load(text) or {}
        return RuntimeConfig.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{origin}: " + "; ".join(describe_validation_error(exc))) from exc


def resolve_agent(
    name: str,
    spec: AgentSpec,
    mcp_servers: Mapping[str, ResolvedMCPServer],
    policies: Mapping[str, ResiliencePolicySpec],
    *,
    namespace: str = "default",
) -> AgentConfig:
    """An agent's config with its tool references and resilience policy resolved."""
    servers: list[ResolvedMCPServer] = []
    for index, tool in enumerate(spec.tools):
        server = mcp_servers.get(tool.mcp_server_ref.name)
        if server is None:
            known = ", ".join(sorted(mcp_servers)) or "none"
            raise InvalidRequestError(
                f"spec.tools[{index}].mcpServerRef.name: no MCPServer named "
                f"{tool.mcp_server_ref.name!r} (known: {known})",
                field=f"spec.tools[{index}].mcpServerRef.name",
            )
        servers.append(
            server.model_copy(
                update={"allowed_tools": tool.allowed_tools, "pinned_tools": tool.pins()}
            )
        )
    policy = ResiliencePolicySpec()
    if spec.resilience_policy_ref is not None:
        found = policies.get(spec.resilience_policy_ref.name)
        if found is None:
            raise InvalidRequestError(
                f"spec.resiliencePolicyRef.name: no ResiliencePolicy named "
                f"{spec.resilience_policy_ref.name!r}",
                field="spec.resiliencePolicyRef.name",
            )
        policy = found
    return AgentConfig(
        name=name, namespace=namespace, spec=spec, mcp_servers=servers, resilience=policy
    )


def config_from_manifests(
    resources: Iterable[Resource],
    *,
    secrets_dir: str,
    builtin_servers: Mapping[str, ResolvedMCPServer] | None = None,
) -> tuple[RuntimeConfig, dict[str, ResolvedMCPServer]]:
    """The runtime config for a set of manifests, and every MCP server they define
    (plus ``builtin_servers``), for agents created later through the API."""
    resources = list(resources)
    servers: dict[str, ResolvedMCPServer] = dict(builtin_servers or {})
    for resource in resources:
        if isinstance(resource, MCPServer):
            try:
                servers[resource.metadata.name] = resolve_mcp_server(
                    resource, secrets_dir=secrets_dir, in_cluster=False
                )
            except UnresolvableError as exc:
                raise ConfigError(str(exc)) from exc
    policies = {r.metadata.name: r.spec for r in resources if isinstance(r, ResiliencePolicy)}
    agents: list[AgentConfig] = []
    for resource in resources:
        if isinstance(resource, Agent):
            try:
                agents.append(
                    resolve_agent(
                        resource.metadata.name,
                        resource.spec,
                        servers,
                        policies,
                        namespace=resource.metadata.namespace,
                    )
                )
            except InvalidRequestError as exc:
                raise ConfigError(f"Agent {resource.metadata.name!r}: {exc.detail}") from exc
    return RuntimeConfig(agents=agents), servers


__all__ = [
    "ConfigError",
    "ManifestError",
    "config_from_manifests",
    "load_runtime_config",
    "resolve_agent",
]
