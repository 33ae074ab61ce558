"""kopf handlers that decide *what* to reconcile; the work queue does the reconciling.

==========================  =====================================================================
event                       enqueues
==========================  =====================================================================
Agent                       the Agent (new, deleted, or a spec change: generation moved past
                            ``status.observedGeneration``)
MCPServer                   the server; on a spec change, creation or deletion also every Agent
                            that references it (index ``agentfleet_references``)
ResiliencePolicy            the policy; on a spec change also its Agents, its MCPServers and the
                            Agents calling those (their ``meshRetries`` flag may change)
SecretBinding               the binding; on a spec change the Agents it names, now or before
owned object (Deployment,   its controlling Agent or MCPServer: drift correction and status
Service, ConfigMap, HPA,    (a Deployment's readiness). The watch echo of the operator's own
PDB, NetworkPolicy, mesh)   write (same resourceVersion) is skipped.
resync (every N seconds)    every object, listed afresh (``controller/resync.py``): drift
                            nobody announced is corrected within one period
==========================  =====================================================================

Three kopf indexes keep the reverse references; kopf runs no handler before they are full,
so the first reconcile after a restart already sees every SecretBinding (no pod roll).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from agentfleet_crds.v1alpha1 import API_VERSION, GROUP, VERSION
from agentfleet_operator.context import (
    BINDINGS_INDEX,
    MCP_REFERENCES_INDEX,
    REFERENCES_INDEX,
    OperatorContext,
    context_from,
)
from agentfleet_operator.controller.common import plain
from agentfleet_operator.controller.queue import Key
from agentfleet_operator.render.mesh import ISTIO_GROUP, LINKERD_POLICY_GROUP
from agentfleet_operator.render.meta import MANAGED_BY, MANAGED_BY_LABEL

#: Resources whose objects the operator owns: (group, version, plural).
OWNED_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)
#: Mesh resources (watched when the cluster serves them; version from discovery).
OWNED_MESH_RESOURCES: tuple[tuple[str, str], ...] = (
    (ISTIO_GROUP, "virtualservices"),
    (ISTIO_GROUP, "destinationrules"),
    (LINKERD_POLICY_GROUP, "httproutes"),
)
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}
SEEN_GENERATION = "agentfleet_seen_generation"
SEEN_TOOL_SCHEMAS = "agentfleet_seen_tool_schemas"
SEEN_AGENTS = "agentfleet_seen_agents"


def _ctx(memo: kopf.Memo, kwargs: Mapping[str, Any]) -> OperatorContext:
    context = context_from(memo)
    context.indexes.capture(kwargs)
    return context


def _enqueue(context: OperatorContext, kind: str, namespace: str | None, name: str) -> None:
    if context.queue is not None and namespace:
        context.queue.add(Key(kind, namespace, name))


def _spec_changed(type_: str | None, body: Mapping[str, Any], memo: kopf.Memo) -> bool:
    """A creation, a deletion, or a generation this handler has not seen (not the initial
    listing: everything is listed then, dependants included)."""
    generation = (body.get("metadata") or {}).get("generation")
    seen = memo.get(SEEN_GENERATION)
    memo[SEEN_GENERATION] = generation
    if type_ is None:
        return False
    if type_ in ("ADDED", "DELETED"):
        return True
    return seen != generation


def _tool_schemas_changed(type_: str | None, body: Mapping[str, Any], memo: kopf.Memo) -> bool:
    """An MCPServer's probe listed other tool schemas: the Agents pinning its tools
    re-check their pins (``Degraded=True ToolSchemaChanged``)."""
    schemas = (body.get("status") or {}).get("toolSchemas")
    known = SEEN_TOOL_SCHEMAS in memo
    seen = memo.get(SEEN_TOOL_SCHEMAS)
    memo[SEEN_TOOL_SCHEMAS] = schemas
    return type_ == "MODIFIED" and known and seen != schemas


def _needs_reconcile(type_: str | None, body: Mapping[str, Any]) -> bool:
    """Skip the echo of a status write: nothing but status changed since the reconcile."""
    if type_ != "MODIFIED":
        return True
    generation = (body.get("metadata") or {}).get("generation")
    return (body.get("status") or {}).get("observedGeneration") != generation


# --- indexes ------------------------------------------------------------------------------


def agent_references(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(kind, namespace, name) of what an Agent references → ("Agent", its name)."""
    spec = body.get("spec") or {}
    refs: dict[tuple[str, str, str], tuple[str, str]] = {}
    if not namespace or not name:
        return refs
    for tool in spec.get("tools") or []:
        server = (tool.get("mcpServerRef") or {}).get("name") if isinstance(tool, Mapping) else None
        if isinstance(server, str):
            refs[("MCPServer", namespace, server)] = ("Agent", name)
    policy = (spec.get("resiliencePolicyRef") or {}).get("name")
    if isinstance(policy, str):
        refs[("ResiliencePolicy", namespace, policy)] = ("Agent", name)
    return refs


def mcp_references(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[tuple[str, str, str], tuple[str, str]]:
    policy = ((body.get("spec") or {}).get("resiliencePolicyRef") or {}).get("name")
    if not namespace or not name or not isinstance(policy, str):
        return {}
    return {("ResiliencePolicy", namespace, policy): ("MCPServer", name)}


def binding_agents(body: Mapping[str, Any]) -> list[str]:
    agents = (body.get("spec") or {}).get("agents") or []
    return [a for a in agents if isinstance(a, str)]


def bindings_by_agent(
    body: kopf.Body, namespace: str | None, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, agent) → the SecretBinding naming it (as a plain body)."""
    if not namespace:
        return {}
    raw = plain(body)
    kept = {k: raw[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in raw}
    return {(namespace, agent): kept for agent in binding_agents(raw)}


# --- events -------------------------------------------------------------------------------


async def agent_event(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    context = _ctx(memo, kwargs)
    if name is None:
        return
    if type == "DELETED":
        _forget(context, "Agent", namespace, name, body)
        return
    if _needs_reconcile(type, body):
        _enqueue(context, "Agent", namespace, name)


def _forget(
    context: OperatorContext, kind: str, namespace: str | None, name: str, body: kopf.Body
) -> None:
    if context.queue is not None and namespace:
        context.queue.forget(Key(kind, namespace, name))
    if context.events is not None:
        context.events.forget(str((body.get("metadata") or {}).get("uid") or ""))


def _enqueue_referrers(
    context: OperatorContext, kind: str, namespace: str, name: str, seen: set[tuple[str, str]]
) -> None:
    for ref_kind, ref_name in context.indexes.referrers(kind, namespace, name):
        if (ref_kind, ref_name) in seen:
            continue
        seen.add((ref_kind, ref_name))
        _enqueue(context, ref_kind, namespace, ref_name)
        if ref_kind == "MCPServer":  # the Agents calling it may change their meshRetries
            _enqueue_referrers(context, "MCPServer", namespace, ref_name, seen)


async def dependency_event(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """MCPServer and ResiliencePolicy: themselves, and on a spec change whoever uses them."""
    context = _ctx(memo, kwargs)
    kind = str(body.get("kind") or "")
    if name is None or not namespace or not kind:
        return
    if type == "DELETED":
        _forget(context, kind, namespace, name, body)
    elif _needs_reconcile(type, body):
        _enqueue(context, kind, namespace, name)
    if _spec_changed(type, body, memo) or _tool_schemas_changed(type, body, memo):
        _enqueue_referrers(context, kind, namespace, name, set())


async def binding_event(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    context = _ctx(memo, kwargs)
    if name is None or not namespace:
        return
    agents = set(binding_agents(body))
    before = set(memo.get(SEEN_AGENTS) or ())
    memo[SEEN_AGENTS] = sorted(agents)
    if type == "DELETED":
        _forget(context, "SecretBinding", namespace, name, body)
    elif _needs_reconcile(type, body):
        _enqueue(context, "SecretBinding", namespace, name)
    if _spec_changed(type, body, memo):
        for agent in sorted(agents | before):
            _enqueue(context, "Agent", namespace, agent)


def controller_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the agentfleet resource controlling an owned object."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("apiVersion") == API_VERSION and ref.get("name"):
            return str(ref.get("kind")), str(ref["name"])
    return None


async def owned_event(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    name: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """An owned object changed or went away: reconcile its owner (drift, readiness)."""
    context = _ctx(memo, kwargs)
    owner = controller_of(body)
    if owner is None or type is None or name is None or not namespace:
        return
    key = (str(body.get("kind")), namespace, name)
    version = (body.get("metadata") or {}).get("resourceVersion")
    if type == "DELETED":
        context.written.pop(key, None)
    elif version is not None and context.written.get(key) == version:
        return  # the echo of our own write
    _enqueue(context, owner[0], namespace, owner[1])


def register(registry: kopf.OperatorRegistry) -> None:
    on = kopf.on
    on.index(GROUP, VERSION, "agents", registry=registry, id=REFERENCES_INDEX)(agent_references)
    on.index(GROUP, VERSION, "mcpservers", registry=registry, id=MCP_REFERENCES_INDEX)(
        mcp_references
    )
    on.index(GROUP, VERSION, "secretbindings", registry=registry, id=BINDINGS_INDEX)(
        bindings_by_agent
    )
    on.event(GROUP, VERSION, "agents", registry=registry, id="agent")(agent_event)
    for plural in ("mcpservers", "resiliencepolicies"):
        on.event(GROUP, VERSION, plural, registry=registry, id=f"{plural}-event")(dependency_event)
    on.event(GROUP, VERSION, "secretbindings", registry=registry, id="secretbinding")(binding_event)
    owned: Iterable[tuple[str, ...]] = (*OWNED_RESOURCES, *OWNED_MESH_RESOURCES)
    for resource in owned:
        on.event(*resource, registry=registry, id=f"owned-{resource[-1]}", labels=MANAGED)(
            owned_event
        )
