"""Admission control of one replica: when new realtime streams are refused.

The replica is **saturated** when one of its signals reaches its limit:

* open WebSocket connections ≥ ``AGENTFLEET_REALTIME__MAX_CONNECTIONS``;
* turns waiting for an execution slot (the fair scheduler's queue) ≥
  ``AGENTFLEET_REALTIME__SATURATION_WAITING_TURNS``, when set.

While saturated, a new WebSocket is accepted and closed at once with **1013** (try again
later) and the reason ``saturated: …; retry-after=N``; a new SSE stream gets a 503
``saturated`` problem with ``Retry-After``; ``/healthz/ready`` answers 503 (reason
``saturated``) so that the load balancer sends new clients elsewhere. Connections already
open are never touched. The state clears with hysteresis: only once every signal is below
``resume_ratio`` (90 %) of its limit, so readiness does not flap at the boundary.

Separately, a tenant's ``max_websockets`` quota (per replica: this hub's count of its
connections) refuses its next connection with **1008** and the same kind of hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter, Gauge

from agentfleet.protocol import CloseCode, with_retry_after
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.realtime.hub import ConnectionHub
from agentfleet_runtime.realtime.settings import RealtimeSettings
from agentfleet_runtime.scheduling import FairScheduler
from agentfleet_runtime.tenants import TenantQuotaGuard

ADMISSION_REJECTED = Counter(
    "agentfleet_realtime_admission_rejected",
    "New WebSocket connections and SSE streams refused: the replica is saturated, or the "
    "tenant's max_websockets quota is reached",
    ["reason"],
)
SATURATION = Gauge(
    "agentfleet_realtime_saturation",
    "Load of this replica's most loaded admission signal (1: saturated)",
)
SATURATED = Gauge(
    "agentfleet_realtime_saturated",
    "1 while this replica refuses new streams and reports not ready (admission control)",
)

RejectReason = Literal["saturated", "max_websockets"]


class SaturatedError(AgentfleetError):
    """The replica is saturated: a new stream is refused (503 with ``Retry-After``)."""

    status = 503
    slug = "saturated"
    title = "This replica is saturated"
    retryable = True


@dataclass(frozen=True)
class Refusal:
    """Why a new connection is refused, and how to close it."""

    reason: RejectReason
    code: int
    detail: str
    retry_after: int

    @property
    def close_reason(self) -> str:
        return with_retry_after(self.detail, self.retry_after)[:123]


class Admission:
    def __init__(
        self,
        settings: RealtimeSettings,
        hub: ConnectionHub,
        *,
        scheduler: FairScheduler | None = None,
        quotas: TenantQuotaGuard | None = None,
    ) -> None:
        self.settings = settings
        self._hub = hub
        self._scheduler = scheduler
        self._quotas = quotas
        self._saturated = False

    def load(self) -> dict[str, float]:
        """Each signal's use of its limit (1.0: at the limit)."""
        loads = {"connections": len(self._hub) / self.settings.max_connections}
        threshold = self.settings.saturation_waiting_turns
        if threshold is not None and self._scheduler is not None:
            loads["waiting_turns"] = self._scheduler.waiting() / threshold
        return loads

    def saturation(self) -> str | None:
        """What saturates the replica (``None``: not saturated), with hysteresis."""
        loads = self.load()
        signal, load = max(loads.items(), key=lambda item: item[1])
        if load >= 1.0:
            self._saturated = True
        elif self._saturated and load < self.settings.resume_ratio:
            self._saturated = False
        SATURATION.set(load)
        SATURATED.set(1 if self._saturated else 0)
        if not self._saturated:
            return None
        if signal == "connections":
            return f"{len(self._hub)} of {self.settings.max_connections} WebSocket connections"
        waiting = self._scheduler.waiting() if self._scheduler is not None else 0
        return f"{waiting} turns waiting for an execution slot"

    def check(self, tenant: str | None = None, tenant_limit: int | None = None) -> Refusal | None:
        """Refuse a new connection (of ``tenant``, whose ``max_websockets`` is
        ``tenant_limit``)? Synchronous, so a check and the hub's ``add`` that follows it
        are atomic on the event loop. Counts the refusal."""
        refusal: Refusal | None = None
        saturated = self.saturation()
        if saturated is not None:
            refusal = Refusal(
                "saturated",
                CloseCode.TRY_AGAIN_LATER,
                f"saturated: {saturated}",
                self.settings.retry_after_seconds,
            )
        elif tenant is not None and tenant_limit is not None:
            used = self._hub.count(tenant)
            if used >= tenant_limit:
                refusal = Refusal(
                    "max_websockets",
                    CloseCode.POLICY_VIOLATION,
                    f"tenant quota max_websockets ({tenant_limit}) reached",
                    self.settings.retry_after_seconds,
                )
        if refusal is not None:
            ADMISSION_REJECTED.labels(refusal.reason).inc()
        return refusal

    async def tenant_limit(self, tenant: str) -> int | None:
        """The tenant's ``max_websockets`` (its own, else the default; ``None``: none)."""
        if self._quotas is None:
            return None
        return await self._quotas.limit(tenant, "max_websockets")

    def admit_stream(self) -> None:
        """A new SSE stream: refused with :class:`SaturatedError` while saturated."""
        refusal = self.check()
        if refusal is not None:
            raise SaturatedError(
                f"{refusal.detail}: connect to another replica or retry later",
                retry_after=refusal.retry_after,
            )
