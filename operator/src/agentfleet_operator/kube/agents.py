"""Reading an Agent's dependencies and applying what it renders to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agentfleet_crds.manifests import describe_validation_error
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy
from agentfleet_operator.kube.apply import apply_object, delete_owned
from agentfleet_operator.kube.client import KubeClient
from agentfleet_operator.kube.resources import MCP_SERVERS, RESILIENCE_POLICIES
from agentfleet_operator.render import RenderedAgent
from agentfleet_operator.render.config import tool_allowlists


def resource_body(raw: Any) -> dict[str, Any]:
    """The parts of a stored object the models validate (server-set ``status`` is not)."""
    return {key: raw[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in raw}


@dataclass
class AgentDependencies:
    """The resources an Agent references that exist; ``invalid`` names the ones that exist
    but do not validate (``Kind/name`` → problem)."""

    mcp_servers: dict[str, MCPServer] = field(default_factory=dict)
    policy: ResiliencePolicy | None = None
    invalid: dict[str, str] = field(default_factory=dict)


async def fetch_dependencies(client: KubeClient, agent: Agent) -> AgentDependencies:
    namespace = agent.metadata.namespace
    deps = AgentDependencies()
    for name in tool_allowlists(agent):
        raw = await client.get_or_none(MCP_SERVERS, namespace, name)
        if raw is None:
            continue
        try:
            deps.mcp_servers[name] = MCPServer.model_validate(resource_body(raw))
        except ValidationError as exc:
            deps.invalid[f"MCPServer/{name}"] = "; ".join(describe_validation_error(exc))
    ref = agent.spec.resilience_policy_ref
    if ref is not None:
        raw = await client.get_or_none(RESILIENCE_POLICIES, namespace, ref.name)
        if raw is not None:
            try:
                deps.policy = ResiliencePolicy.model_validate(resource_body(raw))
            except ValidationError as exc:
                deps.invalid[f"ResiliencePolicy/{ref.name}"] = "; ".join(
                    describe_validation_error(exc)
                )
    return deps


async def apply_agent(
    client: KubeClient, rendered: RenderedAgent, owner_uid: str | None
) -> dict[str, Any]:
    """Apply every object of a rendered Agent; returns the Deployment as the server has it."""
    deployment: dict[str, Any] = {}
    for obj in rendered.objects:
        applied = await apply_object(client, obj, owner_uid)
        if obj is rendered.deployment:
            deployment = applied
    for ref in rendered.absent:
        await delete_owned(
            client,
            api_version=ref.api_version,
            kind=ref.kind,
            namespace=ref.namespace,
            name=ref.name,
            owner_uid=owner_uid,
        )
    return deployment
