"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does,
so that 2+ replicas can run and only one reconciles.

* A candidate takes the Lease when it does not exist, when it names no holder, or when its
  record has not changed for ``lease_duration`` seconds *as observed by the candidate's own
  clock* (no trust in other hosts' clocks). Every write is conditional on the Lease's
  resourceVersion: of two candidates racing, one gets 409 and stays a follower.
* The leader renews every ``retry_period``; if it cannot renew for ``renew_deadline``
  (< ``lease_duration``) it gives up leadership (sets the stop flag: the process exits and
  is restarted as a follower) before any other replica may take over.
* On a clean shutdown the leader releases the Lease (empty holder), so a follower takes over
  at its next attempt instead of waiting for expiry.

Why not kopf's peering: replicas of one Deployment have the same priority, and kopf pauses
*all* same-priority peers on a conflict (then they all stop); its peering is meant for
pausing an in-cluster operator while a developer's runs, not for failover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from agentfleet_operator.kube import ConflictError, KubeClient, KubeError
from agentfleet_operator.kube.resources import LEASES
from agentfleet_operator.observability import OperatorMetrics

logger = logging.getLogger("agentfleet.operator.leader")


def micro_time(now: datetime | None = None) -> str:
    """``metav1.MicroTime``: RFC 3339 with microseconds."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline or lease_duration * 2 / 3
        self.retry_period = retry_period or lease_duration / 7.5
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.metrics = metrics
        self.is_leader = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            logger.info(
                f"{self.identity} {'became' if value else 'is no longer'} the leader "
                f"(Lease {self.namespace}/{self.name})"
            )
        self.is_leader = value
        if self.metrics is not None:
            self.metrics.leader.set(1 if value else 0)

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        old = previous or {}
        mine = old.get("holderIdentity") == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": old.get("acquireTime") if mine else now,
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if mine else 1),
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; whether this candidate holds the Lease afterwards."""
        lease = await self.kube.get_or_none(LEASES, self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**self._spec(None), "leaseTransitions": 0},
            }
            try:
                await self.kube.create(LEASES, self.namespace, body)
            except ConflictError:
                return False
            return self._won()
        spec = dict(lease.get("spec") or {})
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # held by someone else, and not expired as far as we have seen
        patch = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": self._spec(spec),
        }
        try:
            await self.kube.patch(LEASES, self.namespace, self.name, patch)
        except ConflictError:
            return False
        return self._won()

    def _won(self) -> bool:
        self._last_renew = time.monotonic()
        self._set_leader(True)
        return True

    async def acquire(self) -> None:
        """Wait until this candidate leads."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except KubeError as exc:
                logger.warning(f"leader election: {exc}")
            await asyncio.sleep(self.retry_period)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until cancelled; set ``lost`` (and return) once renewals failed for
        ``renew_deadline`` seconds or another candidate took the Lease."""
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                renewed = await asyncio.wait_for(
                    self.try_acquire_or_renew(), timeout=self.renew_deadline
                )
            except (KubeError, TimeoutError) as exc:
                logger.warning(f"leader election: renewing failed: {exc}")
                renewed = False
            if not renewed and time.monotonic() - self._last_renew >= self.renew_deadline:
                self._set_leader(False)
                lost.set()
                return

    async def release(self) -> None:
        """Give the Lease up (if held) so that a follower takes over at once."""
        if not self.is_leader:
            return
        self._set_leader(False)
        try:
            lease = await self.kube.get_or_none(LEASES, self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            patch = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
            }
            await self.kube.patch(LEASES, self.namespace, self.name, patch)
        except KubeError as exc:
            logger.info(f"leader election: releasing the Lease failed: {exc}")
