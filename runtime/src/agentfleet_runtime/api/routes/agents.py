"""``/api/v1/agents``: list (paged, filtered, sorted), create (one or many), get, replace,
delete (one or many)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Admin, Reader
from agentfleet_runtime.api.bulk import MAX_BATCH, BulkResult, run_bulk
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.idempotency import IdempotencyKey, idempotent
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import AgentCreate, AgentPublic, AgentReplace
from agentfleet_runtime.state.base import AgentRecord, AgentSource

router = APIRouter(prefix="/agents", tags=["agents"])

SORTS: Sorts[AgentRecord] = Sorts(
    keys={"name": lambda r: r.name, "created_at": lambda r: r.created_at},
    default="name",
    id_of=lambda r: r.name,
)


class AgentBulkCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "name": "helper",
                            "spec": {
                                "systemPrompt": "You are a concise assistant.",
                                "model": {"provider": "fake", "name": "offline"},
                            },
                        }
                    ]
                }
            ]
        },
    )

    items: list[AgentCreate] = Field(min_length=1, max_length=MAX_BATCH)


class AgentBulkDelete(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"names": ["helper", "old-bot"]}]}
    )

    names: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        min_length=1, max_length=MAX_BATCH
    )


def _public(service: AgentService, record: AgentRecord) -> AgentPublic:
    loaded = service.loaded_agent(record.name, tenant=record.tenant)
    return AgentPublic(
        name=record.name,
        namespace=record.namespace,
        source=record.source,
        spec=record.spec,
        tools=[tool.name for tool in loaded.tools.tools()],
        created_at=record.created_at,
    )


@router.get(
    "",
    summary="List agents",
    description="Paged (`limit`, `cursor`); `sort`: `name` (default), `created_at`, "
    "`-` for descending.",
    responses=problem_responses(422),
)
async def list_agents(
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: PageQuery,
    source: Annotated[AgentSource | None, Query(description="Only agents from here")] = None,
) -> Page[AgentPublic]:
    records = await service.list_agents(tenant=caller.tenant)
    chosen = [r for r in records if source is None or r.source is source]
    result = paginate(chosen, page, SORTS, request=request, response=response)
    return result.map(lambda r: _public(service, r))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent",
    description="Creates an agent from the same spec an Agent manifest has. Tool references "
    "name MCP servers the runtime knows (from manifests or config).",
    responses=problem_responses(409, 422),
)
async def create_agent(
    body: AgentCreate,
    service: Service,
    caller: Admin,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AgentPublic:
    async def run() -> AgentPublic:
        config = service.resolve_agent(body.name, body.spec, tenant=caller.tenant)
        record = await service.create_agent(config, tenant=caller.tenant)
        audit(request, caller, "agent.created", subject_type="agent", subject=body.name)
        return _public(service, record)

    return await idempotent(request, response, caller, idempotency_key, AgentPublic, run)


@router.post(
    "/bulk",
    summary=f"Create many agents (up to {MAX_BATCH}), a result per item",
    description="Each item is created as `POST /agents` would (201, or its problem); one "
    "failing does not stop the others. `Idempotency-Key` makes the whole batch run once.",
    responses=problem_responses(409, 422),
)
async def bulk_create_agents(
    body: AgentBulkCreate,
    service: Service,
    caller: Admin,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BulkResult:
    async def create(item: AgentCreate) -> str:
        config = service.resolve_agent(item.name, item.spec, tenant=caller.tenant)
        name = (await service.create_agent(config, tenant=caller.tenant)).name
        audit(request, caller, "agent.created", subject_type="agent", subject=name)
        return name

    async def run() -> BulkResult:
        return await run_bulk(body.items, create, status=201, instance=request.url.path)

    return await idempotent(request, response, caller, idempotency_key, BulkResult, run)


@router.post(
    "/bulk-delete",
    summary=f"Delete many agents (up to {MAX_BATCH}), a result per item",
    description="Each name is deleted as `DELETE /agents/{name}` would (204, 404, or 409 "
    "`read-only` for agents from manifests).",
    responses=problem_responses(422),
)
async def bulk_delete_agents(
    body: AgentBulkDelete,
    service: Service,
    caller: Admin,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BulkResult:
    async def delete(name: str) -> str:
        await service.delete_agent(name, tenant=caller.tenant)
        audit(request, caller, "agent.deleted", subject_type="agent", subject=name)
        return name

    async def run() -> BulkResult:
        return await run_bulk(body.names, delete, status=204, instance=request.url.path)

    return await idempotent(request, response, caller, idempotency_key, BulkResult, run)


@router.get("/{name}", summary="Get an agent", responses=problem_responses(404))
async def get_agent(name: str, service: Service, caller: Reader) -> AgentPublic:
    """An agent the caller's tenant can see (its own, or a shared one from the runtime
    config), with the names of the tools it can call right now."""
    return _public(service, await service.get_agent(name, tenant=caller.tenant))


@router.put(
    "/{name}",
    summary="Replace an agent's spec",
    description="Replaces the whole spec of an agent created through the API; the next turn "
    "of every session with it runs the new one. The new spec is resolved and its tools "
    "connected first: a spec that does not resolve (422, e.g. an unknown MCP server) leaves "
    "the old agent serving. Agents loaded from manifests or the operator's config are "
    "read-only (409).",
    responses=problem_responses(404, 409, 422),
)
async def replace_agent(
    name: str, body: AgentReplace, service: Service, caller: Admin, request: Request
) -> AgentPublic:
    record = await service.replace_agent(name, body.spec, tenant=caller.tenant)
    audit(request, caller, "agent.updated", subject_type="agent", subject=name)
    return _public(service, record)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent",
    description="Agents loaded from manifests or the operator's config are read-only (409).",
    responses=problem_responses(404, 409),
)
async def delete_agent(name: str, service: Service, caller: Admin, request: Request) -> None:
    await service.delete_agent(name, tenant=caller.tenant)
    audit(request, caller, "agent.deleted", subject_type="agent", subject=name)
