"""``/api/v1/tenants`` (admin scope): the tenants the runtime knows and their quotas.

Data is scoped by the tenant of the caller's credential whether or not a record exists
here; a record adds a display name and quotas. An admin sees and changes only its own
tenant's record, except admins of the operator tenant (``tenancy.operator_tenant``,
``default`` by default), who manage every tenant."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import ItemList
from agentfleet_runtime.auth.base import ForbiddenError, Principal
from agentfleet_runtime.errors import ConflictError, NotFoundError
from agentfleet_runtime.tenants import TenantId, TenantQuotas, TenantRecord, TenantStore

router = APIRouter(prefix="/tenants", tags=["tenants"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "acme", "quotas": {"max_sessions": 100}}]},
    )

    id: TenantId
    display_name: str | None = Field(default=None, max_length=200)
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    quotas: TenantQuotas | None = None


def _store(request: Request) -> TenantStore:
    store: TenantStore = request.app.state.state_backend.tenants
    return store


def _operator(request: Request, caller: Principal) -> bool:
    operator: str = request.app.state.settings.tenancy.operator_tenant
    return caller.tenant == operator


def _may_manage(request: Request, caller: Principal, tenant_id: str) -> bool:
    return caller.tenant == tenant_id or _operator(request, caller)


async def _get(request: Request, caller: Principal, tenant_id: str) -> TenantRecord:
    record = (
        await _store(request).get(tenant_id) if _may_manage(request, caller, tenant_id) else None
    )
    if record is None:
        raise NotFoundError(f"tenant {tenant_id!r} does not exist", tenant=tenant_id)
    return record


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant (operator tenant's admins only)",
    responses=problem_responses(403, 409, 422),
)
async def create_tenant(body: TenantCreate, request: Request, caller: Admin) -> TenantRecord:
    if not _operator(request, caller):
        raise ForbiddenError("only admins of the operator tenant create tenants")
    if await _store(request).get(body.id) is not None:
        raise ConflictError(f"tenant {body.id!r} already exists", tenant=body.id)
    record = TenantRecord(id=body.id, display_name=body.display_name, quotas=body.quotas)
    await _store(request).put(record)
    return record


@router.get("", summary="List tenants (your own, or all for the operator tenant)")
async def list_tenants(request: Request, caller: Admin) -> ItemList[TenantRecord]:
    records = await _store(request).list()
    return ItemList(items=[r for r in records if _may_manage(request, caller, r.id)])


@router.get("/{tenant_id}", summary="Get a tenant", responses=problem_responses(404))
async def get_tenant(tenant_id: str, request: Request, caller: Admin) -> TenantRecord:
    return await _get(request, caller, tenant_id)


@router.patch(
    "/{tenant_id}",
    summary="Change a tenant's display name or quotas (operator tenant's admins only)",
    responses=problem_responses(403, 404, 422),
)
async def update_tenant(
    tenant_id: str, body: TenantUpdate, request: Request, caller: Admin
) -> TenantRecord:
    record = await _get(request, caller, tenant_id)
    if not _operator(request, caller):  # a tenant cannot raise its own quotas
        raise ForbiddenError("only admins of the operator tenant change tenants")
    if body.display_name is not None:
        record.display_name = body.display_name
    if body.quotas is not None:
        record.quotas = body.quotas
    await _store(request).put(record)
    return record


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant's record (its data stays; operator tenant's admins only)",
    responses=problem_responses(403, 404),
)
async def delete_tenant(tenant_id: str, request: Request, caller: Admin) -> None:
    await _get(request, caller, tenant_id)
    if not _operator(request, caller):
        raise ForbiddenError("only admins of the operator tenant delete tenants")
    await _store(request).delete(tenant_id)
