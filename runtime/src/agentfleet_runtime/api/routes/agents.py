"""``/api/v1/agents``."""

from __future__ import annotations

from fastapi import APIRouter, status

from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.authn import Admin, Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import AgentCreate, AgentPublic, ItemList
from agentfleet_runtime.state.base import AgentRecord

router = APIRouter(prefix="/agents", tags=["agents"])


def _public(service: AgentService, record: AgentRecord) -> AgentPublic:
    loaded = service.loaded_agent(record.name)
    return AgentPublic(
        name=record.name,
        namespace=record.namespace,
        source=record.source,
        spec=record.spec,
        tools=[tool.name for tool in loaded.tools.tools()],
        created_at=record.created_at,
    )


@router.get("", summary="List agents")
async def list_agents(service: Service, caller: Reader) -> ItemList[AgentPublic]:
    records = await service.list_agents(tenant=caller.tenant)
    return ItemList(items=[_public(service, r) for r in records])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an agent",
    description="Creates an agent from the same spec an Agent manifest has. Tool references "
    "name MCP servers the runtime knows (from manifests or config).",
    responses=problem_responses(409, 422),
)
async def create_agent(body: AgentCreate, service: Service, caller: Admin) -> AgentPublic:
    config = service.resolve_agent(body.name, body.spec)
    record = await service.create_agent(config, tenant=caller.tenant)
    return _public(service, record)


@router.get("/{name}", summary="Get an agent", responses=problem_responses(404))
async def get_agent(name: str, service: Service, caller: Reader) -> AgentPublic:
    return _public(service, await service.get_agent(name, tenant=caller.tenant))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent",
    description="Agents loaded from manifests or the operator's config are read-only (409).",
    responses=problem_responses(404, 409),
)
async def delete_agent(name: str, service: Service, caller: Admin) -> None:
    await service.delete_agent(name, tenant=caller.tenant)
