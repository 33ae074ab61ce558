"""Agent reconciliation: fetch → render → apply → write status once.

Level-triggered: whatever triggered it (the Agent, a referenced resource, an owned object,
the resync timer), a reconcile reads the current state and converges to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agentfleet_crds.manifests import describe_validation_error
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy, SecretBinding
from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.common import apply_owned, resource_body, write_status
from agentfleet_operator.controller.events import NORMAL, WARNING
from agentfleet_operator.kube import ConflictError, KubeClient, KubeError, OwnershipConflictError
from agentfleet_operator.kube.resources import AGENTS, MCP_SERVERS, RESILIENCE_POLICIES
from agentfleet_operator.render import MissingReference, render_agent
from agentfleet_operator.render.config import tool_allowlists
from agentfleet_operator.render.mesh import hop_retried_by_mesh
from agentfleet_operator.render.secrets import bound_secrets
from agentfleet_operator.status import (
    Applied,
    Blocked,
    ConditionType,
    DeploymentState,
    Outcome,
    Reason,
    agent_status,
    ready_condition,
)

logger = logging.getLogger("agentfleet.operator.agents")


@dataclass(frozen=True)
class ReconcileResult:
    status: dict[str, Any]
    outcome: Outcome
    retry_after: float | None = None
    changed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class AgentDependencies:
    """The resources an Agent references that exist; ``invalid`` names the ones that exist
    but do not validate (``Kind/name`` → problem)."""

    mcp_servers: dict[str, MCPServer] = field(default_factory=dict)
    policy: ResiliencePolicy | None = None
    #: MCPServers whose calls the service mesh retries.
    mesh_retried: set[str] = field(default_factory=set)
    invalid: dict[str, str] = field(default_factory=dict)
    #: MCPServer → tool → input-schema hash, from its ``status.toolSchemas`` (the probe).
    tool_schemas: dict[str, dict[str, str]] = field(default_factory=dict)


async def _policy(
    client: KubeClient, namespace: str, name: str, deps: AgentDependencies
) -> ResiliencePolicy | None:
    raw = await client.get_or_none(RESILIENCE_POLICIES, namespace, name)
    if raw is None:
        return None
    try:
        return ResiliencePolicy.model_validate(resource_body(raw))
    except ValidationError as exc:
        deps.invalid[f"ResiliencePolicy/{name}"] = "; ".join(describe_validation_error(exc))
        return None


async def fetch_dependencies(context: OperatorContext, agent: Agent) -> AgentDependencies:
    client = context.kube
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
            continue
        listed = (raw.get("status") or {}).get("toolSchemas") or []
        deps.tool_schemas[name] = {
            str(t["name"]): str(t["inputSchemaHash"])
            for t in listed
            if isinstance(t, Mapping) and "name" in t and "inputSchemaHash" in t
        }
    ref = agent.spec.resilience_policy_ref
    if ref is not None:
        deps.policy = await _policy(client, namespace, ref.name, deps)
    server_policies: dict[str, ResiliencePolicy | None] = {}
    for name, server in deps.mcp_servers.items():
        server_ref = server.spec.resilience_policy_ref
        if server.spec.hosted is None or server_ref is None:
            continue
        if server_ref.name not in server_policies:
            server_policies[server_ref.name] = await _policy(
                client, namespace, server_ref.name, AgentDependencies()
            )
        policy = server_policies[server_ref.name]
        if hop_retried_by_mesh(context.mesh.mesh, policy.spec if policy else None):
            deps.mesh_retried.add(name)
    return deps


def bindings_of(context: OperatorContext, namespace: str, name: str) -> list[SecretBinding]:
    """The valid SecretBindings that name the Agent (from kopf's index)."""
    bindings: list[SecretBinding] = []
    for body in context.indexes.bindings_for(namespace, name):
        try:
            bindings.append(SecretBinding.model_validate(resource_body(body)))
        except ValidationError:
            continue  # the binding's own reconcile reports it
    return bindings


async def reconcile(context: OperatorContext, raw: Mapping[str, Any]) -> ReconcileResult:
    """One reconcile of one Agent (``raw``: the object as stored)."""
    settings = context.settings
    generation = (raw.get("metadata") or {}).get("generation")
    previous = raw.get("status") or {}
    now = datetime.now(UTC)

    def blocked(reason: str, message: str, retry_after: float | None) -> ReconcileResult:
        outcome = Blocked(reason, message)
        status = agent_status(previous, generation=generation, outcome=outcome, now=now)
        return ReconcileResult(status, outcome, retry_after)

    try:
        agent = Agent.model_validate(resource_body(raw))
    except ValidationError as exc:
        return blocked(Reason.INVALID_SPEC, "; ".join(describe_validation_error(exc)), None)
    try:
        deps = await fetch_dependencies(context, agent)
    except KubeError as exc:
        return blocked(Reason.APPLY_FAILED, str(exc), settings.apply_retry_seconds)
    if deps.invalid:
        message = "; ".join(f"{ref}: {problem}" for ref, problem in sorted(deps.invalid.items()))
        return blocked(Reason.INVALID_REFERENCE, message, settings.dependency_retry_seconds)

    bound = bound_secrets(agent.metadata.name, bindings_of(context, *_ns_name(agent)))
    rendered = render_agent(
        agent,
        deps.mcp_servers,
        deps.policy,
        settings,
        bound=bound,
        mesh=context.mesh,
        mesh_retried=deps.mesh_retried,
    )
    if isinstance(rendered, MissingReference):
        return blocked(rendered.reason, rendered.message, settings.dependency_retry_seconds)
    try:
        report = await apply_owned(context, rendered.objects, rendered.absent, agent.metadata.uid)
    except OwnershipConflictError as exc:
        return blocked(Reason.RESOURCE_CONFLICT, exc.message, settings.dependency_retry_seconds)
    except KubeError as exc:
        return blocked(Reason.APPLY_FAILED, str(exc), settings.apply_retry_seconds)

    deployment = report.get("Deployment", rendered.deployment["metadata"]["name"])
    outcome = Applied(
        DeploymentState.from_body(deployment) if deployment else None,
        degraded=pin_mismatches(agent, deps.tool_schemas),
    )
    status = agent_status(
        previous,
        generation=generation,
        outcome=outcome,
        now=now,
        config_hash=rendered.config_hash,
        endpoint=rendered.endpoint,
    )
    return ReconcileResult(status, outcome, changed=report.changed)


def pin_mismatches(
    agent: Agent, tool_schemas: Mapping[str, Mapping[str, str]]
) -> tuple[str, str] | None:
    """``(ToolSchemaChanged, message)`` when a tool the Agent pins is listed by its
    MCPServer (``status.toolSchemas``, from the operator's probe) with another input-schema
    hash, or not at all. The runtime withholds such a tool from the model; this makes it
    visible on the Agent. Servers not probed yet (no ``toolSchemas``) are not judged."""
    problems: list[str] = []
    for ref in agent.spec.tools:
        pins = ref.pins()
        server = ref.mcp_server_ref.name
        listed = tool_schemas.get(server)
        if not pins or not listed:
            continue
        for tool, pinned in sorted(pins.items()):
            actual = listed.get(tool)
            if actual is None:
                problems.append(f"{server}/{tool} is no longer listed")
            elif actual != pinned:
                problems.append(f"{server}/{tool} is listed as {actual}")
    if not problems:
        return None
    return (
        Reason.TOOL_SCHEMA_CHANGED,
        "pinned tools withheld from the model: " + "; ".join(problems),
    )


def _ns_name(agent: Agent) -> tuple[str, str]:
    return agent.metadata.namespace, agent.metadata.name


def record_transitions(
    context: OperatorContext, raw: Mapping[str, Any], result: ReconcileResult
) -> None:
    """Events for what changed: Ready, blocked, a new config rolling out, drift undone."""
    events = context.events
    previous = raw.get("status") or {}
    before = ready_condition(previous)
    after = ready_condition(result.status)
    generation = (raw.get("metadata") or {}).get("generation")
    spec_unchanged = previous.get("observedGeneration") == generation
    if result.changed and spec_unchanged and previous.get("configHash") is not None:
        for kind, _ in result.changed:
            context.metrics.drift.labels(kind=kind).inc()
        if events is not None:
            what = ", ".join(f"{kind} {name}" for kind, name in result.changed)
            events.record(raw, NORMAL, "DriftCorrected", f"Restored {what} to the rendered state")
    if events is None or after is None:
        return
    new_hash = result.status.get("configHash")
    if new_hash and previous.get("configHash") and new_hash != previous.get("configHash"):
        events.record(raw, NORMAL, "ConfigChanged", f"Rolling out runtime config {new_hash[:12]}")
    became = before is None or before.status != after.status or before.reason != after.reason
    if not became:
        return
    if isinstance(result.outcome, Blocked):
        events.record(raw, WARNING, after.reason, after.message)
    elif after.type == ConditionType.READY and after.status == "True":
        events.record(raw, NORMAL, "Ready", after.message)


async def reconcile_agent(context: OperatorContext, namespace: str, name: str) -> float | None:
    """The queue's entry point: read, reconcile, write status; seconds until a retry."""
    raw = await context.kube.get_or_none(AGENTS, namespace, name)
    if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
        return None
    result = await reconcile(context, raw)
    try:
        await write_status(context.kube, AGENTS, raw, result.status)
    except ConflictError:
        return 0.05  # changed since the read: its event reconciles again; be sure anyway
    record_transitions(context, raw, result)
    if isinstance(result.outcome, Blocked):
        logger.info(
            f"Agent {namespace}/{name}: {result.outcome.reason}: {result.outcome.message}",
            extra={"object": f"Agent/{namespace}/{name}"},
        )
    return result.retry_after
