"""Kubernetes Events for notable transitions (``kubectl describe`` shows them).

Posted through the operator's own API client (``create`` on core/v1 ``events``), in the
background: an Event that cannot be posted is logged, never fails or delays a reconcile.
Consecutive identical events for one object are posted once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agentfleet_operator.kube import KubeClient, KubeError
from agentfleet_operator.kube.resources import EVENTS

logger = logging.getLogger("agentfleet.operator.events")

COMPONENT = "agentfleet-operator"
NORMAL = "Normal"
WARNING = "Warning"


class EventRecorder:
    def __init__(self, kube: KubeClient, *, instance: str = "", max_pending: int = 256) -> None:
        self._kube = kube
        self._instance = instance
        self._last: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_pending = max_pending

    def record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event about ``obj`` (a stored object with apiVersion, kind, metadata)."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if self._last.get(uid) == (reason, message):
            return
        self._last[uid] = (reason, message)
        if len(self._tasks) >= self._max_pending:
            logger.warning(f"dropping Event {reason} for {meta.get('name')}: too many pending")
            return
        task = asyncio.create_task(self._post(self.event_body(obj, type_, reason, message)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)

    def event_body(
        self, obj: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{meta.get('name')}.",
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            await self._kube.create(EVENTS, body["metadata"]["namespace"], body)
        except KubeError as exc:
            logger.info(f"could not post Event {body['reason']}: {exc}")

    async def drain(self) -> None:
        """Wait for the events being posted (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
