"""SecretBinding and ResiliencePolicy reconciliation: they own no objects; their effect is
on the Agents that use them (re-rendered through the index). Here: validation and status.

A SecretBinding's status says what resolved: for ``kubernetes``, each Secret key is looked
up (the operator needs ``get`` on Secrets for this and reads nothing else of them: values
are never copied, logged or written anywhere); the cloud providers are resolved by the
runtime's secret providers, so they are reported as delegated. Missing Secrets are checked
again every ``dependency_retry_seconds`` (Secrets are not watched: fewer permissions, less
memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agentfleet_crds.manifests import describe_validation_error
from agentfleet_crds.v1alpha1 import ResiliencePolicy, SecretBinding
from agentfleet_crds.v1alpha1.resiliencepolicy import MeshRetryMode
from agentfleet_crds.v1alpha1.secretbinding import SecretProviderName
from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.agents import bindings_of
from agentfleet_operator.controller.common import resource_body, write_status
from agentfleet_operator.controller.events import NORMAL, WARNING
from agentfleet_operator.kube import ConflictError, KubeError
from agentfleet_operator.kube.resources import (
    AGENTS,
    RESILIENCE_POLICIES,
    SECRET_BINDINGS,
    SECRETS,
)
from agentfleet_operator.render.mesh import Mesh
from agentfleet_operator.render.secrets import bound_secrets
from agentfleet_operator.status import (
    Blocked,
    Outcome,
    Reason,
    Resolved,
    ready_condition,
    resource_status,
)


def _record(
    context: OperatorContext,
    raw: Mapping[str, Any],
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
    outcome: Outcome,
) -> None:
    if context.events is None:
        return
    before, after = ready_condition(previous), ready_condition(status)
    if after is None:
        return
    same = before is not None and (before.status, before.reason) == (after.status, after.reason)
    if same and not (isinstance(outcome, Resolved) and outcome.degraded):
        return
    if isinstance(outcome, Blocked):
        context.events.record(raw, WARNING, after.reason, after.message)
    elif isinstance(outcome, Resolved) and outcome.degraded is not None:
        context.events.record(raw, WARNING, *outcome.degraded)
    elif before is None or before.status != after.status:
        context.events.record(raw, NORMAL, "Ready", after.message)


async def reconcile_secret_binding(
    context: OperatorContext, namespace: str, name: str
) -> float | None:
    kube, settings = context.kube, context.settings
    raw = await kube.get_or_none(SECRET_BINDINGS, namespace, name)
    if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
        return None
    previous = raw.get("status") or {}
    generation = raw["metadata"].get("generation")
    retry: float | None = None
    extra: dict[str, Any] = {}
    outcome: Outcome
    try:
        binding = SecretBinding.model_validate(resource_body(raw))
    except ValidationError as exc:
        outcome = Blocked(Reason.INVALID_SPEC, "; ".join(describe_validation_error(exc)))
    else:
        outcome, retry, extra = await _binding_outcome(context, binding)
    status = resource_status(
        previous, generation=generation, outcome=outcome, now=datetime.now(UTC), extra=extra
    )
    try:
        await write_status(kube, SECRET_BINDINGS, raw, status)
    except ConflictError:
        return 0.05
    _record(context, raw, previous, status, outcome)
    return (
        retry
        if retry is not None
        else (settings.dependency_retry_seconds if isinstance(outcome, Blocked) else None)
    )


async def _binding_outcome(
    context: OperatorContext, binding: SecretBinding
) -> tuple[Outcome, float | None, dict[str, Any]]:
    kube, settings = context.kube, context.settings
    spec, namespace = binding.spec, binding.metadata.namespace
    try:
        agents = [
            agent
            for agent in spec.agents
            if await kube.get_or_none(AGENTS, namespace, agent) is not None
        ]
        resolved: list[str] = []
        problems: list[str] = []
        if spec.provider is SecretProviderName.KUBERNETES:
            found: dict[str, dict[str, Any] | None] = {}
            for secret in spec.secrets:
                assert secret.kubernetes is not None
                source = secret.kubernetes
                if source.secret_name not in found:
                    found[source.secret_name] = await kube.get_or_none(
                        SECRETS, namespace, source.secret_name
                    )
                stored = found[source.secret_name]
                if stored is None:
                    problems.append(f"{secret.name}: Secret {source.secret_name} not found")
                elif source.key not in (stored.get("data") or {}) and source.key not in (
                    stored.get("stringData") or {}
                ):
                    problems.append(
                        f"{secret.name}: key {source.key} not in Secret {source.secret_name}"
                    )
                else:
                    resolved.append(secret.name)
        else:
            resolved = [secret.name for secret in spec.secrets]
    except KubeError as exc:
        return Blocked(Reason.APPLY_FAILED, str(exc)), settings.apply_retry_seconds, {}
    missing = [p.split(":", 1)[0] for p in problems]
    extra = {"resolved": resolved, "missing": missing, "agents": agents}
    if problems:
        message = "; ".join(problems)
        return Blocked(Reason.SECRET_NOT_FOUND, message), settings.dependency_retry_seconds, extra
    shadowed = sorted(
        {
            entry
            for agent in spec.agents
            for entry in bound_secrets(agent, bindings_of(context, namespace, agent)).shadowed
            if entry.startswith(f"{binding.metadata.name}/")
        }
    )
    degraded = (
        (
            Reason.SECRET_SHADOWED,
            "an earlier SecretBinding (by name) already binds: " + ", ".join(shadowed),
        )
        if shadowed
        else None
    )
    target = f"{len(agents)} of {len(spec.agents)} agents"
    if spec.provider is SecretProviderName.KUBERNETES:
        message = f"{len(resolved)} secrets mounted as files into {target}"
        return Resolved(Reason.RESOLVED, message, degraded), None, extra
    message = (
        f"{len(resolved)} {spec.provider} references rendered into the runtime config of "
        f"{target}; the runtime's {spec.provider} secret provider reads them"
    )
    return Resolved(Reason.DELEGATED, message, degraded), None, extra


async def reconcile_resilience_policy(
    context: OperatorContext, namespace: str, name: str
) -> float | None:
    kube = context.kube
    raw = await kube.get_or_none(RESILIENCE_POLICIES, namespace, name)
    if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
        return None
    previous = raw.get("status") or {}
    users = context.indexes.referrers("ResiliencePolicy", namespace, name)
    agents = sum(1 for kind, _ in users if kind == "Agent")
    servers = sum(1 for kind, _ in users if kind == "MCPServer")
    extra: dict[str, Any] = {"agents": agents, "mesh": str(context.mesh.mesh)}
    outcome: Outcome
    try:
        policy = ResiliencePolicy.model_validate(resource_body(raw))
    except ValidationError as exc:
        outcome = Blocked(Reason.INVALID_SPEC, "; ".join(describe_validation_error(exc)))
    else:
        degraded = None
        if policy.spec.mesh.retries is MeshRetryMode.MESH and context.mesh.mesh is Mesh.NONE:
            degraded = (
                Reason.MESH_NOT_AVAILABLE,
                "mesh.retries is mesh but the operator runs without a service mesh: "
                "the runtime retries these hops in-process",
            )
        message = f"used by {agents} agents and {servers} MCP servers (mesh: {context.mesh.mesh})"
        outcome = Resolved(Reason.ACCEPTED, message, degraded)
    status = resource_status(
        previous,
        generation=raw["metadata"].get("generation"),
        outcome=outcome,
        now=datetime.now(UTC),
        extra=extra,
    )
    try:
        await write_status(kube, RESILIENCE_POLICIES, raw, status)
    except ConflictError:
        return 0.05
    _record(context, raw, previous, status, outcome)
    return None
