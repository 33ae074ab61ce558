"""An Agent's status from what the reconcile did and what its Deployment reports. Pure.

Three conditions, always all three, in this order:

==============  ==============================================================================
``Ready``       the current generation's config is rolled out and every desired replica is
                ready (``kubectl wait --for=condition=Ready``)
``Reconciling`` the operator is still bringing the cluster to the spec (a rollout is running)
``Degraded``    something needs attention: a missing reference, a conflict, a stuck rollout
==============  ==============================================================================

Every condition is computed first and compared afterwards (never
``changed = changed or set_condition(...)``): ``lastTransitionTime`` moves only when a
condition's status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from agentfleet_crds.v1alpha1 import Condition
from agentfleet_crds.v1alpha1.common import ConditionStatus


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    DEGRADED = "Degraded"


class Reason(StrEnum):
    # Progress and success.
    DEPLOYMENT_READY = "DeploymentReady"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    SCALED_TO_ZERO = "ScaledToZero"
    RECONCILED = "Reconciled"
    AS_EXPECTED = "AsExpected"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    # The reconcile could not apply the spec (see BLOCKING_REASONS).
    MCP_SERVER_NOT_FOUND = "MCPServerNotFound"
    RESILIENCE_POLICY_NOT_FOUND = "ResiliencePolicyNotFound"
    INVALID_SPEC = "InvalidSpec"
    INVALID_REFERENCE = "InvalidReference"
    RESOURCE_CONFLICT = "ResourceConflict"
    APPLY_FAILED = "ApplyFailed"
    # MCPServer, SecretBinding, ResiliencePolicy.
    RESOLVED = "Resolved"
    ACCEPTED = "Accepted"
    DELEGATED = "Delegated"
    SECRET_NOT_FOUND = "SecretNotFound"
    MESH_NOT_AVAILABLE = "MeshNotAvailable"
    SECRET_SHADOWED = "SecretShadowed"
    # Agent: a pinned tool's schema on its MCPServer differs from the pin.
    TOOL_SCHEMA_CHANGED = "ToolSchemaChanged"


#: Reasons meaning "the last reconcile did not apply the spec": a Deployment update must not
#: overwrite them (the Deployment still runs an older config, or none).
BLOCKING_REASONS = frozenset(
    {
        Reason.MCP_SERVER_NOT_FOUND,
        Reason.RESILIENCE_POLICY_NOT_FOUND,
        Reason.INVALID_SPEC,
        Reason.INVALID_REFERENCE,
        Reason.RESOURCE_CONFLICT,
        Reason.APPLY_FAILED,
        Reason.SECRET_NOT_FOUND,
    }
)

_TYPES = (ConditionType.READY, ConditionType.RECONCILING, ConditionType.DEGRADED)


@dataclass(frozen=True)
class DeploymentState:
    """What an Agent's Deployment reports, reduced to what the conditions need."""

    desired: int
    ready: int = 0
    updated: int = 0
    available: int = 0
    generation: int | None = None
    observed_generation: int | None = None
    progress_deadline_exceeded: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> DeploymentState:
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        progressing: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
        )
        return cls(
            desired=int(spec.get("replicas", 1)),
            ready=int(status.get("readyReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            generation=(body.get("metadata") or {}).get("generation"),
            observed_generation=status.get("observedGeneration"),
            progress_deadline_exceeded=(
                progressing.get("status") == "False"
                and progressing.get("reason") == "ProgressDeadlineExceeded"
            ),
        )

    @property
    def observed(self) -> bool:
        """The Deployment controller has seen the latest Deployment spec."""
        if self.generation is None:
            return True
        return self.observed_generation is not None and self.observed_generation >= self.generation

    @property
    def rolled_out(self) -> bool:
        """Every desired replica runs the latest pod template and is ready."""
        return self.observed and self.updated >= self.desired and self.ready >= self.desired


@dataclass(frozen=True)
class Applied:
    """The reconcile applied the spec; ``deployment`` is what the Deployment reports;
    ``degraded`` = (reason, message) when it runs but needs attention (the Deployment's
    own trouble wins)."""

    deployment: DeploymentState | None
    degraded: tuple[str, str] | None = None


@dataclass(frozen=True)
class Blocked:
    """The reconcile could not apply the spec (a reason from :data:`BLOCKING_REASONS`)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Resolved:
    """Nothing to roll out: the resource is usable as it is (a remote MCPServer, a policy,
    a binding). ``degraded`` = (reason, message) when it is usable but needs attention."""

    reason: str = Reason.RESOLVED
    message: str = ""
    degraded: tuple[str, str] | None = None


Outcome = Applied | Blocked | Resolved


@dataclass(frozen=True)
class _Desired:
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str


def _desired(outcome: Outcome) -> list[_Desired]:
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    ready, reconciling, degraded = _TYPES
    if isinstance(outcome, Resolved):
        attention = (
            _Desired(degraded, true, *outcome.degraded)
            if outcome.degraded is not None
            else _Desired(degraded, false, Reason.AS_EXPECTED, "")
        )
        return [
            _Desired(ready, true, outcome.reason, outcome.message),
            _Desired(reconciling, false, Reason.RECONCILED, outcome.message),
            attention,
        ]
    if isinstance(outcome, Blocked):
        return [
            _Desired(ready, false, outcome.reason, outcome.message),
            _Desired(reconciling, false, outcome.reason, outcome.message),
            _Desired(degraded, true, outcome.reason, outcome.message),
        ]
    fine = (
        _Desired(degraded, true, *outcome.degraded)
        if outcome.degraded is not None
        else _Desired(degraded, false, Reason.AS_EXPECTED, "")
    )
    deployment = outcome.deployment
    if deployment is None or not deployment.observed:
        waiting = "Waiting for the Deployment controller to observe the new spec"
        return [
            _Desired(ready, false, Reason.ROLLOUT_IN_PROGRESS, waiting),
            _Desired(reconciling, true, Reason.ROLLOUT_IN_PROGRESS, waiting),
            fine,
        ]
    counts = f"{deployment.ready}/{deployment.desired} replicas ready"
    if deployment.progress_deadline_exceeded and not deployment.rolled_out:
        message = f"The rollout exceeded its progress deadline ({counts})"
        reason = Reason.PROGRESS_DEADLINE_EXCEEDED
        return [
            _Desired(ready, false, reason, message),
            _Desired(reconciling, false, reason, message),
            _Desired(degraded, true, reason, message),
        ]
    if deployment.desired == 0:
        message = "The Deployment is scaled to zero replicas"
        return [
            _Desired(ready, false, Reason.SCALED_TO_ZERO, message),
            _Desired(reconciling, false, Reason.RECONCILED, message),
            fine,
        ]
    if deployment.rolled_out:
        return [
            _Desired(ready, true, Reason.DEPLOYMENT_READY, counts),
            _Desired(reconciling, false, Reason.RECONCILED, counts),
            fine,
        ]
    message = f"Rolling out: {deployment.updated}/{deployment.desired} replicas updated, {counts}"
    return [
        _Desired(ready, false, Reason.ROLLOUT_IN_PROGRESS, message),
        _Desired(reconciling, true, Reason.ROLLOUT_IN_PROGRESS, message),
        fine,
    ]


def parse_conditions(raw: object) -> list[Condition]:
    """Conditions from a raw status list; malformed entries are dropped."""
    conditions: list[Condition] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            conditions.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return conditions


def agent_conditions(
    previous: Sequence[Condition],
    *,
    generation: int | None,
    outcome: Outcome,
    now: datetime,
) -> list[Condition]:
    """The full conditions list. ``lastTransitionTime`` is kept from ``previous`` when a
    condition's status is unchanged; conditions of other types are kept after ours."""
    by_type = {c.type: c for c in previous}
    stamp = now.astimezone(UTC).replace(microsecond=0)
    conditions: list[Condition] = []
    for want in _desired(outcome):
        before = by_type.get(want.type)
        unchanged = before is not None and before.status == want.status
        conditions.append(
            Condition(
                type=want.type,
                status=want.status,
                reason=want.reason,
                message=want.message,
                last_transition_time=(
                    before.last_transition_time
                    if unchanged and before is not None and before.last_transition_time
                    else stamp
                ),
                observed_generation=generation,
            )
        )
    conditions.extend(c for c in previous if c.type not in set(_TYPES))
    return conditions


def agent_status(
    previous: Mapping[str, Any] | None,
    *,
    generation: int | None,
    outcome: Outcome,
    now: datetime,
    config_hash: str | None = None,
    endpoint: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status to write (camelCase, JSON-ready) after a reconcile or a Deployment change.
    Fields this outcome knows nothing about are left out, so a merge-patch keeps them;
    ``extra`` adds resource-specific fields."""
    old = previous or {}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            c.to_manifest()
            for c in agent_conditions(
                parse_conditions(old.get("conditions")),
                generation=generation,
                outcome=outcome,
                now=now,
            )
        ],
    }
    if isinstance(outcome, Applied) and outcome.deployment is not None:
        status["replicas"] = outcome.deployment.desired
        status["readyReplicas"] = outcome.deployment.ready
    if config_hash is not None:
        status["configHash"] = config_hash
    if endpoint is not None:
        status["endpoint"] = endpoint
    status.update(extra or {})
    return status


resource_status = agent_status


def status_changed(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` (a merge patch) would change ``current``."""
    old = current or {}
    return any(old.get(key) != value for key, value in new.items())


def ready_condition(status: Mapping[str, Any] | None) -> Condition | None:
    for condition in parse_conditions((status or {}).get("conditions")):
        if condition.type == ConditionType.READY:
            return condition
    return None


def blocked_outcome(status: Mapping[str, Any]) -> Blocked | None:
    """The blocking outcome the last reconcile recorded, if any."""
    for condition in parse_conditions(status.get("conditions")):
        if condition.type == ConditionType.READY and condition.reason in BLOCKING_REASONS:
            return Blocked(condition.reason, condition.message)
    return None


def kept_attention(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """A ``Degraded`` the last reconcile found that a Deployment change does not clear
    (a pinned tool's schema changed)."""
    for condition in parse_conditions(status.get("conditions")):
        if (
            condition.type == ConditionType.DEGRADED
            and condition.status == ConditionStatus.TRUE
            and condition.reason == Reason.TOOL_SCHEMA_CHANGED
        ):
            return condition.reason, condition.message
    return None


def refresh_status(
    status: Mapping[str, Any] | None, deployment: DeploymentState | None, now: datetime
) -> dict[str, Any] | None:
    """The new status after the Agent's Deployment changed, or ``None`` when nothing
    changes (or the Agent was never reconciled). A blocking outcome is kept: the
    Deployment does not run the current spec then."""
    if not status or status.get("observedGeneration") is None:
        return None
    outcome: Outcome = blocked_outcome(status) or Applied(
        deployment, degraded=kept_attention(status)
    )
    new = agent_status(status, generation=status["observedGeneration"], outcome=outcome, now=now)
    if deployment is not None and isinstance(outcome, Blocked):
        new["replicas"], new["readyReplicas"] = deployment.desired, deployment.ready
    changed = any(status.get(key) != value for key, value in new.items())
    return new if changed else None
