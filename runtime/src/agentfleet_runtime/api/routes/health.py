"""Probes and metrics: ``/healthz/live``, ``/healthz/ready``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentfleet_runtime.api.problems import problem_response, problem_responses

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
    reachable, and while not shutting down; otherwise 503 `not-ready` with the reason."""
    state = request.app.state
    if state.shutting_down:
        return problem_response(503, "not-ready", "Not ready", "shutting down", request)
    if not state.service.ready():
        return problem_response(503, "not-ready", "Not ready", "no agent loaded", request)
    secrets = getattr(state, "secrets", None)
    if secrets is not None and not secrets.ready:
        missing = ", ".join(secrets.readiness().missing)
        return problem_response(
            503, "not-ready", "Not ready", f"required secrets unresolved: {missing}", request
        )
    backend = getattr(state, "state_backend", None)
    if backend is not None and not await backend.healthy():
        return problem_response(
            503, "not-ready", "Not ready", "the state store is unreachable", request
        )
    return {"status": "ok", "agents": len(await state.service.list_agents())}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
