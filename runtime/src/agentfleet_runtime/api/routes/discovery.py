"""``/api/v1/admin``: what this runtime depends on and who runs it — the dependency map,
the registered replicas, the runtime config in force and its reload. Like the rest of
the admin API: the ``admin`` scope of the operator tenant."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.routes.admin import AdminCaller
from agentfleet_runtime.discovery.config_file import SOURCE as CONFIG_SOURCE
from agentfleet_runtime.discovery.wiring import Discovery
from agentfleet_runtime.errors import NotFoundError
from agentfleet_runtime.observability.dependency_map import (
    DependencyMap,
    DependencyMapBuilder,
    redact_url,
    render_markdown,
)
from agentfleet_runtime.state.instances import InstanceRecord

router = APIRouter(prefix="/admin", tags=["admin"], responses=problem_responses(401, 403, 429))


def live_dependency_map(request: Request) -> DependencyMap:
    """The map of this replica: declared from the agents it runs, observed from its
    pipelines, tool servers, state backend, secrets and config watch."""
    state = request.app.state
    settings = state.settings
    service = state.service
    builder = DependencyMapBuilder(fake_base_url=settings.fake_provider_url)
    loaded = service.loaded_agents()
    for loaded_agent in loaded.values():
        builder.add_agent(loaded_agent.config)
    agent_names = [a.config.name for a in loaded.values()]
    builder.add_state(settings.state, agents=agent_names)
    artifacts = settings.artifacts
    if artifacts.backend == "s3":  # large tool results of every agent, attachments
        target = artifacts.s3.endpoint_url or "https://s3.amazonaws.com"
        builder.add(
            "artifacts",
            "storage",
            f"{redact_url(target)} (bucket {artifacts.s3.bucket})",
            agents=agent_names,
        )
    discovery: Discovery | None = getattr(state, "discovery", None)
    if discovery is not None and discovery.config_source is not None:
        status = discovery.config_source.status()
        dep = builder.add(CONFIG_SOURCE, "config", status["path"])
        dep.detail = {"digest": status["digest"], "last_error": status["last_error"]}
        if status["up"]:
            builder.mark(CONFIG_SOURCE, "healthy")
        else:
            builder.mark(CONFIG_SOURCE, "down", "unreadable: serving the last known config")
    resilience = getattr(state, "resilience", None)
    if resilience is not None:
        builder.observe_pipelines(resilience)
    for loaded_agent in loaded.values():
        builder.observe_tools(loaded_agent.config.name, loaded_agent.tools)
    backend = getattr(state, "state_backend", None)
    if backend is not None and backend.degraded is not None:
        builder.observe_state(backend.degraded.degraded)
    secrets = getattr(state, "secrets", None)
    if secrets is not None:
        builder.observe_secrets(secrets)
    return builder.build(replica=state.replica)


@router.get(
    "/dependencies",
    summary="The service dependency map of this replica",
    response_model=None,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def dependencies(
    request: Request,
    _: AdminCaller,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> DependencyMap | Response:
    """Every external dependency (models, MCP servers, the state store, secret
    providers, the config file): its health, circuit breaker, recent latency and error
    rate, and the agents that depend on it. `format=markdown`: the same as a Markdown
    page with a Mermaid graph (what `agentfleet dependency-map` prints)."""
    deps = live_dependency_map(request)
    if format == "markdown":
        return Response(render_markdown(deps), media_type="text/markdown; charset=utf-8")
    return deps


@router.get("/instances", summary="The runtime replicas registered in the state backend")
async def instances(request: Request, _: AdminCaller) -> dict[str, Any]:
    """Every replica that registered itself (heartbeat every
    `AGENTFLEET_DISCOVERY__HEARTBEAT_SECONDS`): ready or not and why, the agents and the
    config digest it runs, degraded mode, refusing breakers; `state` is `stale` once it
    missed three heartbeats."""
    discovery: Discovery = request.app.state.discovery
    records: list[InstanceRecord] = await discovery.heartbeat.list()
    return {
        "items": [record.model_dump(mode="json") | {"state": record.state()} for record in records]
    }


@router.get("/config", summary="The runtime config in force and its watch")
async def config_status(request: Request, _: AdminCaller) -> dict[str, Any]:
    """The digest of the runtime config in force (the Agent's `status.configHash`), the
    agents it defines, and the file watch: up, last error, last reload's outcome."""
    discovery: Discovery = request.app.state.discovery
    source = discovery.config_source
    return {
        "digest": discovery.config_digest,
        "agents": [agent.name for agent in discovery.config.agents],
        "watch": None if source is None else source.status(),
    }


@router.post(
    "/config/reload",
    summary="Read the runtime config file now and apply a change",
    responses=problem_responses(404),
)
async def reload_config(request: Request, caller: AdminCaller) -> dict[str, Any]:
    """Look at the config file now instead of at the next poll. The outcome is
    `unchanged`, `applied`, `rolled_back` (some agent kept its old version: `detail`),
    `rejected` (the file does not validate: the config in force keeps serving) or
    `unavailable` (cannot be read)."""
    discovery: Discovery = request.app.state.discovery
    if discovery.config_source is None:
        raise NotFoundError(
            "this runtime does not watch a config file (agentfleet serve --config, with "
            "AGENTFLEET_DISCOVERY__WATCH_CONFIG=true)"
        )
    result = await discovery.config_source.check()
    audit(
        request,
        caller,
        "config.reloaded",
        subject_type="config",
        subject=discovery.config_digest or "-",
        result=result.outcome,
    )
    return {
        "outcome": result.outcome,
        "detail": result.detail,
        "report": None if result.report is None else result.report.as_dict(),
        "digest": discovery.config_digest,
    }
