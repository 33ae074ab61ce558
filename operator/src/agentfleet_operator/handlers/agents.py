"""Agent reconciliation: fetch → render → apply → write status once.

The kopf handler is thin: :func:`reconcile` does the work and returns the status to write
and whether to retry; the handler copies the status into ``patch.status`` and returns
``None`` (kopf would otherwise store the return value in ``status.<handler-id>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from agentfleet_crds.manifests import describe_validation_error
from agentfleet_crds.v1alpha1 import GROUP, VERSION, Agent
from agentfleet_operator.handlers.context import OperatorContext, context_from
from agentfleet_operator.kube import KubeError, OwnershipConflictError
from agentfleet_operator.kube.agents import apply_agent, fetch_dependencies, resource_body
from agentfleet_operator.render import MissingReference, render_agent
from agentfleet_operator.status import (
    Applied,
    Blocked,
    DeploymentState,
    Outcome,
    Reason,
    agent_status,
)

#: kopf's retry delay for unexpected exceptions (expected ones set their own delay).
UNEXPECTED_ERROR_BACKOFF = 15.0


@dataclass(frozen=True)
class ReconcileResult:
    status: dict[str, Any]
    outcome: Outcome
    retry_after: float | None = None


def plain(value: Any) -> Any:
    """kopf's body views → plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


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
        deps = await fetch_dependencies(context.kube, agent)
    except KubeError as exc:
        return blocked(Reason.APPLY_FAILED, str(exc), settings.apply_retry_seconds)
    if deps.invalid:
        message = "; ".join(f"{ref}: {problem}" for ref, problem in sorted(deps.invalid.items()))
        return blocked(Reason.INVALID_REFERENCE, message, settings.dependency_retry_seconds)

    rendered = render_agent(agent, deps.mcp_servers, deps.policy, settings)
    if isinstance(rendered, MissingReference):
        return blocked(rendered.reason, rendered.message, settings.dependency_retry_seconds)
    try:
        deployment = await apply_agent(context.kube, rendered, agent.metadata.uid)
    except OwnershipConflictError as exc:
        return blocked(Reason.RESOURCE_CONFLICT, exc.message, settings.dependency_retry_seconds)
    except KubeError as exc:
        return blocked(Reason.APPLY_FAILED, str(exc), settings.apply_retry_seconds)

    outcome = Applied(DeploymentState.from_body(deployment) if deployment else None)
    status = agent_status(
        previous,
        generation=generation,
        outcome=outcome,
        now=now,
        config_hash=rendered.config_hash,
        endpoint=rendered.endpoint,
    )
    return ReconcileResult(status, outcome)


async def reconcile_agent(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    result = await reconcile(context_from(memo), plain(body))
    for key, value in result.status.items():
        patch.status[key] = value
    if isinstance(result.outcome, Blocked):
        message = f"{result.outcome.reason}: {result.outcome.message}"
        if result.retry_after is None:
            logger.warning(message)
            return
        raise kopf.TemporaryError(message, delay=result.retry_after)


def register(registry: kopf.OperatorRegistry) -> None:
    """create, update and resume all run the same idempotent reconcile. Expected failures
    retry after the delay they name (TemporaryError); unexpected ones after a backoff."""
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(
            GROUP,
            VERSION,
            Agent.PLURAL,
            registry=registry,
            id="reconcile",
            backoff=UNEXPECTED_ERROR_BACKOFF,
        )(reconcile_agent)
