"""Probes and metrics: ``/healthz/live``, ``/healthz/ready``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentfleet_runtime.api.problems import problem_response, problem_responses
from agentfleet_runtime.readiness import not_ready

router = APIRouter(tags=["operations"])


@router.get("/healthz/live", summary="Liveness: the process is serving")
async def live() -> dict[str, str]:
    """200 while the process serves requests (the liveness probe)."""
    return {"status": "ok"}


@router.get(
    "/healthz/ready",
    summary="Readiness: agents are loaded and the process is not shutting down",
    responses=problem_responses(503),
    response_model=None,
)
async def ready(request: Request) -> dict[str, object] | Response:
    """200 once agents are loaded, required secrets resolved and the state store
    reachable, while not shutting down and not saturated; otherwise 503 `not-ready` with
    the reason (`reason: saturated` while admission control refuses new streams: the load
    balancer then sends new clients to other replicas; connections here are kept)."""
    state = request.app.state
    reason = await not_ready(state)
    if reason is not None:
        if reason.reason == "saturated":  # the admission hint: other replicas take new clients
            return problem_response(
                503, "not-ready", "Not ready", reason.detail, request, reason="saturated"
            )
        return problem_response(503, "not-ready", "Not ready", reason.detail, request)
    return {"status": "ok", "agents": len(await state.service.list_agents())}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
