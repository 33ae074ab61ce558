"""MCPServer reconciliation: hosted servers get a Deployment + Service (+ mesh objects);
every server gets a status with the URL agents use and, when it can be probed, its tools.

Probing lists the server's tools over streamable HTTP, off the reconcile path (a slow or
dead server never holds a worker): at most a few probes run at once, each bounded by
``mcp_probe_timeout_seconds``; results land in ``status.tools``, ``status.toolSchemas``
(each tool's input-schema hash, what an Agent's ``pinnedTools`` pin:
:func:`agentfleet_crds.toolschema.input_schema_hash`, the runtime's function) and a
``ToolsListed`` condition. Remote servers that need headers are not probed (their secrets
are for the runtime, not the operator).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agentfleet_crds.contract import hosted_mcp_service_name
from agentfleet_crds.manifests import describe_validation_error
from agentfleet_crds.toolschema import input_schema_hash
from agentfleet_crds.v1alpha1 import MCPServer, ResiliencePolicy
from agentfleet_crds.v1alpha1.common import Condition, ConditionStatus
from agentfleet_crds.v1alpha1.mcpserver import ToolSchemaHash
from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.common import apply_owned, resource_body, write_status
from agentfleet_operator.controller.events import NORMAL, WARNING
from agentfleet_operator.kube import ConflictError, KubeError, OwnershipConflictError
from agentfleet_operator.kube.resources import MCP_SERVERS, RESILIENCE_POLICIES
from agentfleet_operator.render.agent import ObjectRef
from agentfleet_operator.render.mcpserver import InvalidHostedServerError, render_hosted_mcp_server
from agentfleet_operator.render.mesh import mesh_object_names
from agentfleet_operator.status import (
    Applied,
    Blocked,
    DeploymentState,
    Outcome,
    Reason,
    Resolved,
    parse_conditions,
    ready_condition,
    resource_status,
)

logger = logging.getLogger("agentfleet.operator.mcpservers")

TOOLS_CONDITION = "ToolsListed"


def _hosted_leftovers(context: OperatorContext, server: MCPServer) -> list[ObjectRef]:
    """What a server that is no longer hosted may have left behind."""
    name, namespace = hosted_mcp_service_name(server.metadata.name), server.metadata.namespace
    refs = [
        ObjectRef("apps/v1", "Deployment", namespace, name),
        ObjectRef("v1", "Service", namespace, name),
    ]
    refs.extend(
        ObjectRef(api, kind, namespace, obj)
        for api, kind, obj in mesh_object_names(name, context.mesh)
    )
    return refs


async def reconcile_mcp_server(context: OperatorContext, namespace: str, name: str) -> float | None:
    raw = await context.kube.get_or_none(MCP_SERVERS, namespace, name)
    if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
        context_probe_forget(context, namespace, name)
        return None
    generation = raw["metadata"].get("generation")
    previous = raw.get("status") or {}
    now = datetime.now(UTC)
    retry: float | None = None
    extra: dict[str, Any] = {}
    outcome: Outcome
    server: MCPServer | None = None
    try:
        server = MCPServer.model_validate(resource_body(raw))
    except ValidationError as exc:
        outcome = Blocked(Reason.INVALID_SPEC, "; ".join(describe_validation_error(exc)))
    if server is not None:
        outcome, retry, extra = await _reconcile_valid(context, raw, server, previous)
    status = resource_status(previous, generation=generation, outcome=outcome, now=now, extra=extra)
    try:
        await write_status(context.kube, MCP_SERVERS, raw, status)
    except ConflictError:
        return 0.05
    _events(context, raw, previous, status, outcome)
    if server is not None and not isinstance(outcome, Blocked):
        schedule_probe(context, {**raw, "status": status}, server, extra.get("url"))
    return retry


async def _reconcile_valid(
    context: OperatorContext,
    raw: Mapping[str, Any],
    server: MCPServer,
    previous: Mapping[str, Any],
) -> tuple[Outcome, float | None, dict[str, Any]]:
    settings = context.settings
    spec = server.spec
    namespace = server.metadata.namespace
    if spec.hosted is None:
        extra: dict[str, Any] = {"url": spec.url} if spec.url else {}
        if previous.get("replicas") is not None:  # it was hosted: remove what it left
            try:
                await apply_owned(
                    context, [], _hosted_leftovers(context, server), server.metadata.uid
                )
            except KubeError as exc:
                return Blocked(Reason.APPLY_FAILED, str(exc)), settings.apply_retry_seconds, {}
            extra.update(replicas=None, readyReplicas=None)
        message = (
            f"remote server at {spec.url}"
            if spec.url
            else (f"started by the runtime over stdio: {spec.stdio.command if spec.stdio else ''}")
        )
        return Resolved(Reason.RESOLVED, message), None, extra
    policy: ResiliencePolicy | None = None
    ref = spec.resilience_policy_ref
    if ref is not None:
        try:
            found = await context.kube.get_or_none(RESILIENCE_POLICIES, namespace, ref.name)
        except KubeError as exc:
            return Blocked(Reason.APPLY_FAILED, str(exc)), settings.apply_retry_seconds, {}
        if found is None:
            message = f"ResiliencePolicy not found in the MCPServer's namespace: {ref.name}"
            return (
                Blocked(Reason.RESILIENCE_POLICY_NOT_FOUND, message),
                settings.dependency_retry_seconds,
                {},
            )
        try:
            policy = ResiliencePolicy.model_validate(resource_body(found))
        except ValidationError as exc:
            message = f"ResiliencePolicy/{ref.name}: " + "; ".join(describe_validation_error(exc))
            return Blocked(Reason.INVALID_REFERENCE, message), settings.dependency_retry_seconds, {}
    try:
        rendered = render_hosted_mcp_server(server, policy, settings, context.mesh)
    except InvalidHostedServerError as exc:
        return Blocked(Reason.INVALID_SPEC, str(exc)), None, {}
    try:
        report = await apply_owned(context, rendered.objects, rendered.absent, server.metadata.uid)
    except OwnershipConflictError as exc:
        return Blocked(Reason.RESOURCE_CONFLICT, exc.message), settings.dependency_retry_seconds, {}
    except KubeError as exc:
        return Blocked(Reason.APPLY_FAILED, str(exc)), settings.apply_retry_seconds, {}
    generation = (raw.get("metadata") or {}).get("generation")
    if report.changed and previous.get("observedGeneration") == generation and previous:
        for kind, _ in report.changed:
            context.metrics.drift.labels(kind=kind).inc()
        if context.events is not None:
            what = ", ".join(f"{kind} {name}" for kind, name in report.changed)
            context.events.record(raw, NORMAL, "DriftCorrected", f"Restored {what}")
    deployment = report.get("Deployment", rendered.deployment["metadata"]["name"])
    state = DeploymentState.from_body(deployment) if deployment else None
    extra = {"url": rendered.url}
    if state is not None:
        extra.update(replicas=state.desired, readyReplicas=state.ready)
    return Applied(state), None, extra


def _events(
    context: OperatorContext,
    raw: Mapping[str, Any],
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
    outcome: Outcome,
) -> None:
    if context.events is None:
        return
    before, after = ready_condition(previous), ready_condition(status)
    if after is None or (
        before is not None and before.status == after.status and before.reason == after.reason
    ):
        return
    if isinstance(outcome, Blocked):
        context.events.record(raw, WARNING, after.reason, after.message)
    elif after.status == "True":
        context.events.record(raw, NORMAL, "Ready", after.message)


# --- probing ------------------------------------------------------------------------------


class ProbeState:
    """Probes in flight and when each server was last probed (per operator)."""

    def __init__(self, concurrency: int = 4) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.last: dict[tuple[str, str], tuple[Any, float]] = {}


def _probe_state(context: OperatorContext) -> ProbeState:
    state = context.extensions.get("probes")
    if not isinstance(state, ProbeState):
        state = ProbeState()
        context.extensions["probes"] = state
    return state


def context_probe_forget(context: OperatorContext, namespace: str, name: str) -> None:
    state = _probe_state(context)
    task = state.running.pop((namespace, name), None)
    if task is not None:
        task.cancel()
    state.last.pop((namespace, name), None)


def schedule_probe(
    context: OperatorContext, raw: Mapping[str, Any], server: MCPServer, url: Any
) -> None:
    """List the server's tools in the background, at most once per generation and resync
    period (and again after a failure, at the next reconcile)."""
    timeout = context.settings.mcp_probe_timeout_seconds
    if timeout <= 0 or not isinstance(url, str) or server.spec.headers:
        return
    if server.spec.hosted is not None:
        ready = ready_condition(raw.get("status"))
        if ready is None or ready.status != ConditionStatus.TRUE:
            return  # not serving yet: the Deployment becoming ready brings us back
    state = _probe_state(context)
    key = (server.metadata.namespace, server.metadata.name)
    if key in state.running:
        return
    generation = server.metadata.generation
    last = state.last.get(key)
    recent = last is not None and time.monotonic() - last[1] < context.settings.resync_seconds
    if last is not None and last[0] == generation and recent:
        return
    state.last[key] = (generation, time.monotonic())
    task = asyncio.create_task(_probe(context, server, url, timeout))
    state.running[key] = task
    task.add_done_callback(lambda _: state.running.pop(key, None))


async def list_tools(url: str, within: float) -> dict[str, str]:
    """A streamable-HTTP MCP server's tools (name → input-schema hash), within
    ``within`` seconds."""
    import mcp  # imported late: only probing needs the MCP SDK

    async with asyncio.timeout(within), mcp.Client(url) as client:
        result = await client.list_tools()
        return {
            tool.name: input_schema_hash(tool.input_schema)
            for tool in sorted(result.tools, key=lambda t: t.name)
        }


async def _probe(context: OperatorContext, server: MCPServer, url: str, within: float) -> None:
    state = _probe_state(context)
    namespace, name = server.metadata.namespace, server.metadata.name
    async with state.semaphore:
        started = time.monotonic()
        tools: dict[str, str] | None = None
        try:
            tools = await list_tools(url, within)
        except Exception as exc:  # any failure of a foreign server is a status, not a crash
            reason = "ProbeTimedOut" if isinstance(exc, TimeoutError) else "ProbeFailed"
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            message = f"listing tools at {url} failed after {time.monotonic() - started:.1f}s: "
            condition = (ConditionStatus.FALSE, reason, message + detail[:500])
        else:
            condition = (ConditionStatus.TRUE, "Listed", f"{len(tools)} tools at {url}")
    try:
        await _write_tools(context, namespace, name, tools, condition)
    except KubeError as exc:
        logger.info(f"could not record the tools of MCPServer {namespace}/{name}: {exc}")


async def _write_tools(
    context: OperatorContext,
    namespace: str,
    name: str,
    tools: dict[str, str] | None,
    condition: tuple[ConditionStatus, str, str],
) -> None:
    raw = await context.kube.get_or_none(MCP_SERVERS, namespace, name)
    if raw is None:
        return
    status = raw.get("status") or {}
    conditions = parse_conditions(status.get("conditions"))
    status_value, reason, message = condition
    before = next((c for c in conditions if c.type == TOOLS_CONDITION), None)
    stamp = datetime.now(UTC).replace(microsecond=0)
    new = Condition(
        type=TOOLS_CONDITION,
        status=status_value,
        reason=reason,
        message=message,
        last_transition_time=(
            before.last_transition_time
            if before is not None and before.status == status_value
            else stamp
        ),
        observed_generation=raw["metadata"].get("generation"),
    )
    merged = [c for c in conditions if c.type != TOOLS_CONDITION] + [new]
    patch: dict[str, Any] = {"conditions": [c.to_manifest() for c in merged]}
    if tools is not None:
        patch["tools"] = list(tools)
        patch["toolSchemas"] = [
            ToolSchemaHash(name=name, input_schema_hash=digest).to_manifest()
            for name, digest in tools.items()
        ]
    await write_status(context.kube, MCP_SERVERS, raw, patch)
