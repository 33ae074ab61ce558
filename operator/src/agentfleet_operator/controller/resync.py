"""The periodic resync: every ``resync_seconds`` each custom resource is listed afresh and
every object is queued, so drift that no watch event announced (a missed event, a change
while the operator was down, a Secret that appeared) is corrected within one period.

One loop for all objects (kopf's per-object timers would put a finalizer on every custom
resource). Only the leader runs kopf, so only the leader resyncs.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet_operator.context import OperatorContext
from agentfleet_operator.controller.queue import Key
from agentfleet_operator.kube import KubeError
from agentfleet_operator.kube.resources import (
    AGENTS,
    MCP_SERVERS,
    RESILIENCE_POLICIES,
    SECRET_BINDINGS,
)

logger = logging.getLogger("agentfleet.operator.resync")

RESOURCES = (AGENTS, MCP_SERVERS, RESILIENCE_POLICIES, SECRET_BINDINGS)


async def resync_once(context: OperatorContext) -> int:
    """Queue every custom resource object; how many were queued."""
    queue = context.queue
    if queue is None or not context.kube.connected:
        return 0
    namespaces: tuple[str | None, ...] = context.settings.namespaces or (None,)
    queued = 0
    for resource in RESOURCES:
        for namespace in namespaces:
            try:
                items = await context.kube.list_objects(resource, namespace)
            except KubeError as exc:
                logger.warning(f"resync: listing {resource.plural} failed: {exc}")
                continue
            for item in items:
                meta = item.get("metadata") or {}
                if meta.get("namespace") and meta.get("name"):
                    queue.add(Key(resource.kind, str(meta["namespace"]), str(meta["name"])))
                    queued += 1
    return queued


async def resync_forever(context: OperatorContext) -> None:
    interval = context.settings.resync_seconds
    while True:
        await asyncio.sleep(interval)
        queued = await resync_once(context)
        logger.debug(f"resync queued {queued} objects")
