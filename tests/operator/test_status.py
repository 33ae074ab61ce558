"""The Agent's conditions: all three computed together, transitions timestamped only when a
status flips, blocking reasons surviving Deployment updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentfleet_operator.status import (
    Applied,
    Blocked,
    DeploymentState,
    Reason,
    agent_conditions,
    agent_status,
    parse_conditions,
    refresh_status,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
READY = DeploymentState(
    desired=2, ready=2, updated=2, available=2, generation=3, observed_generation=3
)
ROLLING = DeploymentState(
    desired=2, ready=1, updated=1, available=1, generation=3, observed_generation=3
)


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_ready_deployment() -> None:
    status = agent_status(
        None, generation=4, outcome=Applied(READY), now=T0, config_hash="h", endpoint="http://e"
    )
    conditions = by_type(status)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Reconciling", "Degraded"]
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "DeploymentReady"
    assert conditions["Ready"]["message"] == "2/2 replicas ready"
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Degraded"] == {
        "type": "Degraded",
        "status": "False",
        "reason": "AsExpected",
        "message": "",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 4,
    }
    assert status["observedGeneration"] == 4
    assert status["replicas"] == 2
    assert status["readyReplicas"] == 2
    assert status["configHash"] == "h"
    assert status["endpoint"] == "http://e"


@pytest.mark.parametrize(
    ("deployment", "ready", "reconciling", "degraded", "reason"),
    [
        (None, "False", "True", "False", Reason.ROLLOUT_IN_PROGRESS),
        (ROLLING, "False", "True", "False", Reason.ROLLOUT_IN_PROGRESS),
        (  # the Deployment controller has not seen the new template yet
            DeploymentState(desired=2, ready=2, updated=2, generation=4, observed_generation=3),
            "False",
            "True",
            "False",
            Reason.ROLLOUT_IN_PROGRESS,
        ),
        (DeploymentState(desired=0), "False", "False", "False", Reason.SCALED_TO_ZERO),
        (
            DeploymentState(desired=2, ready=0, progress_deadline_exceeded=True),
            "False",
            "False",
            "True",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
        ),
        (READY, "True", "False", "False", Reason.DEPLOYMENT_READY),
    ],
)
def test_applied_outcomes(
    deployment: DeploymentState | None, ready: str, reconciling: str, degraded: str, reason: str
) -> None:
    conditions = by_type(agent_status(None, generation=1, outcome=Applied(deployment), now=T0))
    assert conditions["Ready"]["status"] == ready
    assert conditions["Ready"]["reason"] == reason
    assert conditions["Reconciling"]["status"] == reconciling
    assert conditions["Degraded"]["status"] == degraded


def test_blocked_outcome() -> None:
    outcome = Blocked(Reason.MCP_SERVER_NOT_FOUND, "MCPServer not found: x")
    status = agent_status(None, generation=2, outcome=outcome, now=T0)
    conditions = by_type(status)
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "MCPServerNotFound"
    assert conditions["Ready"]["message"] == "MCPServer not found: x"
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Degraded"]["status"] == "True"
    assert status["observedGeneration"] == 2
    assert "configHash" not in status  # a merge-patch keeps the last applied hash
    assert "replicas" not in status


def test_transition_time_moves_only_when_status_flips() -> None:
    first = agent_status(None, generation=1, outcome=Applied(ROLLING), now=T0)
    # Same statuses, new message and generation: the timestamps stay.
    second = agent_status(first, generation=2, outcome=Applied(None), now=T1)
    for type_ in ("Ready", "Reconciling", "Degraded"):
        assert by_type(second)[type_]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
        assert by_type(second)[type_]["observedGeneration"] == 2
    # Ready and Reconciling flip; Degraded does not.
    third = agent_status(second, generation=2, outcome=Applied(READY), now=T1)
    assert by_type(third)["Ready"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert by_type(third)["Reconciling"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert by_type(third)["Degraded"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_every_condition_is_computed_even_when_the_first_is_unchanged() -> None:
    """The short-circuit trap: Ready unchanged must not stop Degraded from flipping."""
    before = agent_conditions(
        [], generation=1, outcome=Blocked(Reason.APPLY_FAILED, "boom"), now=T0
    )
    after = agent_conditions(before, generation=1, outcome=Applied(ROLLING), now=T1)
    statuses = {c.type: (c.status.value, c.reason) for c in after}
    assert statuses == {
        "Ready": ("False", "RolloutInProgress"),
        "Reconciling": ("True", "RolloutInProgress"),
        "Degraded": ("False", "AsExpected"),
    }
    assert after[0].last_transition_time == before[0].last_transition_time  # still False


def test_foreign_conditions_are_kept_and_garbage_dropped() -> None:
    previous = [
        {"type": "Ready", "status": "True", "reason": "DeploymentReady"},
        {"type": "ExternalCheck", "status": "True", "reason": "Fine"},
        {"type": "Broken", "status": "Maybe"},
    ]
    status = agent_status({"conditions": previous}, generation=1, outcome=Applied(READY), now=T0)
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "Reconciling",
        "Degraded",
        "ExternalCheck",
    ]
    assert len(parse_conditions(previous)) == 2


def test_deployment_state_from_body() -> None:
    body = {
        "metadata": {"generation": 5},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 5,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ],
        },
    }
    state = DeploymentState.from_body(body)
    assert state == DeploymentState(
        desired=3,
        ready=2,
        updated=3,
        available=2,
        generation=5,
        observed_generation=5,
        progress_deadline_exceeded=True,
    )
    assert not state.rolled_out
    fresh = DeploymentState.from_body({"metadata": {"generation": 1}, "spec": {}})
    assert fresh.desired == 1
    assert not fresh.observed


def test_refresh_flips_ready_and_skips_no_ops() -> None:
    reconciled = agent_status(None, generation=3, outcome=Applied(ROLLING), now=T0, config_hash="h")
    refreshed = refresh_status(reconciled, READY, T1)
    assert refreshed is not None
    assert by_type(refreshed)["Ready"]["status"] == "True"
    assert refreshed["observedGeneration"] == 3  # the Agent generation last reconciled
    assert refreshed["readyReplicas"] == 2
    assert "configHash" not in refreshed
    assert refresh_status({**reconciled, **refreshed}, READY, T1 + timedelta(minutes=1)) is None


def test_refresh_keeps_blocking_reasons() -> None:
    blocked = agent_status(
        None, generation=2, outcome=Blocked(Reason.MCP_SERVER_NOT_FOUND, "gone"), now=T0
    )
    refreshed = refresh_status(blocked, READY, T1)
    assert refreshed is not None  # the replica counts are news...
    assert refreshed["readyReplicas"] == 2
    assert by_type(refreshed)["Ready"]["reason"] == "MCPServerNotFound"  # ...the reason is not
    assert by_type(refreshed)["Ready"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_refresh_waits_for_the_first_reconcile() -> None:
    assert refresh_status(None, READY, T0) is None
    assert refresh_status({"conditions": []}, READY, T0) is None


def test_a_changed_tool_schema_degrades_a_ready_agent_and_survives_a_refresh() -> None:
    flag = (Reason.TOOL_SCHEMA_CHANGED, "pinned tools withheld from the model: demo/calc")
    reconciled = agent_status(
        None, generation=3, outcome=Applied(ROLLING, degraded=flag), now=T0, config_hash="h"
    )
    assert by_type(reconciled)["Degraded"]["status"] == "True"
    assert by_type(reconciled)["Degraded"]["reason"] == "ToolSchemaChanged"
    refreshed = refresh_status(reconciled, READY, T1)
    assert refreshed is not None
    assert by_type(refreshed)["Ready"]["status"] == "True"  # it runs: Ready, but Degraded
    assert by_type(refreshed)["Degraded"]["reason"] == "ToolSchemaChanged"
    assert by_type(refreshed)["Degraded"]["message"] == flag[1]
