"""Whether a replica should receive new traffic, and why not: one answer for the
readiness probe (``/healthz/ready``) and the replica registry (``/api/v1/admin/instances``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NotReady:
    """Why the replica is not ready; ``reason`` is a stable word for machines
    (``shutting-down``, ``saturated``, ``loading``, ``secrets``, ``state-store``)."""

    reason: str
    detail: str


async def not_ready(app_state: Any) -> NotReady | None:
    """``None`` when ready: agents loaded, required secrets resolved, the state store
    reachable (or served from memory in degraded mode), not shutting down, not
    saturated."""
    if app_state.shutting_down:
        return NotReady("shutting-down", "shutting down")
    admission = getattr(app_state, "admission", None)
    saturated = admission.saturation() if admission is not None else None
    if saturated is not None:
        return NotReady("saturated", f"saturated: {saturated}")
    if not app_state.service.ready():
        return NotReady("loading", "no agent loaded")
    secrets = getattr(app_state, "secrets", None)
    if secrets is not None and not secrets.ready:
        missing = ", ".join(secrets.readiness().missing)
        return NotReady("secrets", f"required secrets unresolved: {missing}")
    backend = getattr(app_state, "state_backend", None)
    if backend is not None and not await backend.healthy():
        return NotReady("state-store", "the state store is unreachable")
    return None
