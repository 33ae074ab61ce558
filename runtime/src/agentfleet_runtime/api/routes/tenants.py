"""``/api/v1/tenants`` (admin scope): the tenants the runtime knows and their quotas.

Data is scoped by the tenant of the caller's credential whether or not a record exists
here; a record adds a display name and quotas. An admin sees and changes only its own
tenant's record, except admins of the operator tenant (``tenancy.operator_tenant``,
``default`` by default), who manage every tenant."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.idempotency import IdempotencyKey, idempotent
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.auth.base import ForbiddenError, Principal
from agentfleet_runtime.errors import ConflictError, NotFoundError
from agentfleet_runtime.tenants import TenantId, TenantQuotas, TenantRecord, TenantStore

router = APIRouter(prefix="/tenants", tags=["tenants"])

SORTS: Sorts[TenantRecord] = Sorts(
    keys={"id": lambda r: r.id, "created_at": lambda r: r.created_at},
    default="id",
    id_of=lambda r: r.id,
)


class TenantCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "acme", "quotas": {"max_sessions": 100}}]},
    )

    id: TenantId
    display_name: str | None = Field(default=None, max_length=200)
    quotas: TenantQuotas = Field(default_factory=TenantQuotas)


class TenantUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "display_name": "Acme Corp",
                    "quotas": {"max_sessions": 500, "tokens_per_day": 2_000_000},
                }
            ]
        },
    )

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
async def create_tenant(
    body: TenantCreate,
    request: Request,
    response: Response,
    caller: Admin,
    idempotency_key: IdempotencyKey = None,
) -> TenantRecord:
    """Register a tenant with a display name and quotas (`max_sessions`,
    `max_concurrent_turns`, `requests_per_minute`, `tokens_per_day`)."""
    return await idempotent(
        request,
        response,
        caller,
        idempotency_key,
        TenantRecord,
        lambda: _create(body, request, caller),
    )


async def _create(body: TenantCreate, request: Request, caller: Principal) -> TenantRecord:
    if not _operator(request, caller):
        raise ForbiddenError("only admins of the operator tenant create tenants")
    if await _store(request).get(body.id) is not None:
        raise ConflictError(f"tenant {body.id!r} already exists", tenant=body.id)
    record = TenantRecord(id=body.id, display_name=body.display_name, quotas=body.quotas)
    await _store(request).put(record)
    audit(request, caller, "tenant.created", subject_type="tenant", subject=body.id)
    return record


@router.get(
    "",
    summary="List tenants (your own, or all for the operator tenant)",
    description="Paged (`limit`, `cursor`); `sort`: `id` (default), `created_at`, `-` for "
    "descending.",
    responses=problem_responses(422),
)
async def list_tenants(
    request: Request, response: Response, caller: Admin, page: PageQuery
) -> Page[TenantRecord]:
    records = [r for r in await _store(request).list() if _may_manage(request, caller, r.id)]
    return paginate(records, page, SORTS, request=request, response=response)


@router.get("/{tenant_id}", summary="Get a tenant", responses=problem_responses(404))
async def get_tenant(tenant_id: str, request: Request, caller: Admin) -> TenantRecord:
    """The tenant's record and quotas (unset quotas use the runtime's defaults)."""
    return await _get(request, caller, tenant_id)


@router.patch(
    "/{tenant_id}",
    summary="Change a tenant's display name or quotas (operator tenant's admins only)",
    responses=problem_responses(403, 404, 422),
)
async def update_tenant(
    tenant_id: str, body: TenantUpdate, request: Request, caller: Admin
) -> TenantRecord:
    """Change the display name or replace the quotas; a tenant's own admins cannot
    raise its quotas."""
    record = await _get(request, caller, tenant_id)
    if not _operator(request, caller):  # a tenant cannot raise its own quotas
        raise ForbiddenError("only admins of the operator tenant change tenants")
    if body.display_name is not None:
        record.display_name = body.display_name
    if body.quotas is not None:
        record.quotas = body.quotas
    await _store(request).put(record)
    audit(
        request,
        caller,
        "tenant.updated",
        subject_type="tenant",
        subject=tenant_id,
        changed=sorted(body.model_dump(exclude_none=True)),
    )
    return record


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant's record (its data stays; operator tenant's admins only)",
    responses=problem_responses(403, 404),
)
async def delete_tenant(tenant_id: str, request: Request, caller: Admin) -> None:
    """Forget the tenant's record (its quotas fall back to the defaults); its data stays."""
    await _get(request, caller, tenant_id)
    if not _operator(request, caller):
        raise ForbiddenError("only admins of the operator tenant delete tenants")
    await _store(request).delete(tenant_id)
    audit(request, caller, "tenant.deleted", subject_type="tenant", subject=tenant_id)
