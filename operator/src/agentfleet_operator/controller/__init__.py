"""The reconcilers and the work queue that runs them (kopf's handlers only add keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.agents import reconcile_agent
from agentfleet_operator.controller.mcpservers import reconcile_mcp_server
from agentfleet_operator.controller.others import (
    reconcile_resilience_policy,
    reconcile_secret_binding,
)
from agentfleet_operator.controller.queue import Key, Reconcile, WorkQueue

ReconcileFn = Callable[[OperatorContext, str, str], Awaitable[float | None]]

#: Kind → its reconcile.
RECONCILERS: dict[str, ReconcileFn] = {
    "Agent": reconcile_agent,
    "MCPServer": reconcile_mcp_server,
    "ResiliencePolicy": reconcile_resilience_policy,
    "SecretBinding": reconcile_secret_binding,
}


def reconciler(context: OperatorContext) -> Reconcile:
    """The queue's reconcile function for this operator."""

    async def run(key: Key) -> float | None:
        return await RECONCILERS[key.kind](context, key.namespace, key.name)

    return run


def create_queue(context: OperatorContext) -> WorkQueue:
    queue = WorkQueue(
        reconciler(context), workers=context.settings.workers, metrics=context.metrics
    )
    context.queue = queue
    return queue


__all__ = ["RECONCILERS", "Key", "WorkQueue", "create_queue", "reconciler"]
