"""Agent status follows its Deployment: when the Deployment's replicas become ready (or
not), the Agent's conditions and replica counts are recomputed and patched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from agentfleet_crds.v1alpha1 import API_VERSION, Agent
from agentfleet_operator.handlers.agents import plain
from agentfleet_operator.handlers.context import context_from
from agentfleet_operator.kube import ConflictError, KubeClient, KubeError
from agentfleet_operator.kube.resources import AGENTS
from agentfleet_operator.render.meta import AGENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from agentfleet_operator.status import DeploymentState, refresh_status


def controlling_agent(deployment: dict[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the Agent that controls this Deployment, if one does."""
    meta = deployment.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("apiVersion") == API_VERSION
            and ref.get("kind") == Agent.KIND
            and ref.get("name") == (meta.get("labels") or {}).get(AGENT_LABEL)
        ):
            return str(ref["name"]), str(ref.get("uid"))
    return None


async def sync_agent_status(
    kube: KubeClient,
    namespace: str,
    owner: tuple[str, str],
    deployment: DeploymentState | None,
    *,
    attempts: int = 3,
) -> bool:
    """Recompute the owning Agent's status from its Deployment; whether it was patched.
    The patch is conditional on the Agent's resourceVersion, so a status the reconcile wrote
    meanwhile (a newer generation) is never overwritten with one computed from an older read."""
    name, uid = owner
    for _ in range(attempts):
        agent = await kube.get_or_none(AGENTS, namespace, name)
        if agent is None or (agent.get("metadata") or {}).get("uid") != uid:
            return False
        status = refresh_status(agent.get("status"), deployment, datetime.now(UTC))
        if status is None:
            return False
        precondition = {"resourceVersion": agent["metadata"]["resourceVersion"]}
        try:
            await kube.patch(
                AGENTS,
                namespace,
                name,
                {"metadata": precondition, "status": status},
                subresource="status",
            )
        except ConflictError:
            continue  # the Agent changed since the read: read again
        return True
    return False


async def deployment_changed(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    deployment = plain(body)
    owner = controlling_agent(deployment)
    if owner is None or namespace is None:
        return
    state = None if type == "DELETED" else DeploymentState.from_body(deployment)
    try:
        await sync_agent_status(context_from(memo).kube, namespace, owner, state)
    except KubeError as exc:  # the next Deployment event or Agent reconcile catches up
        logger.warning(f"Could not update Agent {namespace}/{owner[0]} status: {exc}")


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        registry=registry,
        id="agent-deployment-status",
        labels={MANAGED_BY_LABEL: MANAGED_BY, AGENT_LABEL: kopf.PRESENT},
    )(deployment_changed)
