"""``/api/v1/api-keys`` (admin scope): create (the key is in the response, once), list,
get, rotate (a new secret, the old one stops working at once), revoke, delete. An admin
manages the keys of its own tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.idempotency import IdempotencyKey, idempotent
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.auth.apikeys import ApiKeyRecord, ApiKeyStore, hash_key, make_key, new_key
from agentfleet_runtime.auth.base import Principal, Scope
from agentfleet_runtime.errors import InvalidRequestError, NotFoundError
from agentfleet_runtime.state.base import utcnow

router = APIRouter(prefix="/api-keys", tags=["api keys"])

SORTS: Sorts[ApiKeyRecord] = Sorts(
    keys={"created_at": lambda r: r.created_at, "name": lambda r: r.name},
    default="created_at",
    id_of=lambda r: r.id,
)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci", "scopes": ["agent-invoke"]}]},
    )

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_at: datetime | None = Field(default=None, description="Never expires when absent")


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    tenant: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None
    active: bool


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown only here: store it now.")


def _store(request: Request) -> ApiKeyStore:
    store: ApiKeyStore = request.app.state.state_backend.api_keys
    return store


def _public(record: ApiKeyRecord) -> ApiKeyPublic:
    return ApiKeyPublic(**record.model_dump(exclude={"hash"}), active=record.active())


async def _own(request: Request, key_id: str, tenant: str) -> ApiKeyRecord:
    record = await _store(request).get(key_id)
    if record is None or record.tenant != tenant:
        raise NotFoundError(f"API key {key_id!r} does not exist", api_key=key_id)
    return record


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
    responses=problem_responses(401, 403, 422),
)
async def create_api_key(
    body: ApiKeyCreate,
    request: Request,
    response: Response,
    caller: Admin,
    idempotency_key: IdempotencyKey = None,
) -> ApiKeyCreated:
    """With an ``Idempotency-Key``, a retry by the same caller gets the same key again
    (the stored response is encrypted under the idempotency key; see
    :mod:`agentfleet_runtime.api.idempotency`); any other caller never sees it."""
    return await idempotent(
        request,
        response,
        caller,
        idempotency_key,
        ApiKeyCreated,
        lambda: _create(body, request, caller),
    )


async def _create(body: ApiKeyCreate, request: Request, caller: Principal) -> ApiKeyCreated:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise InvalidRequestError("expires_at needs a time zone (e.g. ...Z)")
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise InvalidRequestError("expires_at is in the past")
    key_id, key = new_key()
    record = ApiKeyRecord(
        id=key_id,
        tenant=caller.tenant,
        name=body.name,
        scopes=sorted(set(body.scopes)),
        hash=hash_key(key),
        expires_at=body.expires_at,
    )
    await _store(request).put(record)
    audit(
        request,
        caller,
        "api_key.created",
        subject_type="api_key",
        subject=key_id,
        scopes=record.scopes,
        key_name=record.name,
    )
    return ApiKeyCreated(**_public(record).model_dump(), key=key)


@router.get(
    "",
    summary="List the tenant's API keys (never the keys themselves)",
    description="Paged (`limit`, `cursor`); `sort`: `created_at` (default), `name`, `-` for "
    "descending. Filters: `revoked` (true/false), `active` (true/false: neither revoked "
    "nor expired), `scope` (keys granting exactly this scope).",
    responses=problem_responses(422),
)
async def list_api_keys(
    request: Request,
    response: Response,
    caller: Admin,
    page: PageQuery,
    revoked: Annotated[bool | None, Query(description="Only (not) revoked keys")] = None,
    active: Annotated[bool | None, Query(description="Only (in)active keys")] = None,
    scope: Annotated[Scope | None, Query(description="Only keys with this scope")] = None,
) -> Page[ApiKeyPublic]:
    records = [
        r
        for r in await _store(request).list(tenant=caller.tenant)
        if (revoked is None or (r.revoked_at is not None) is revoked)
        and (active is None or r.active() is active)
        and (scope is None or scope in r.scopes)
    ]
    return paginate(records, page, SORTS, request=request, response=response).map(_public)


@router.get("/{key_id}", summary="Get an API key", responses=problem_responses(404))
async def get_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyPublic:
    """An API key's record (name, scopes, expiry, last use); never the key itself."""
    return _public(await _own(request, key_id, caller.tenant))


@router.post(
    "/{key_id}/rotate",
    summary="Rotate an API key: a new secret, shown once; the old one stops working",
    responses=problem_responses(404, 422),
)
async def rotate_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyCreated:
    """Issue a new secret for the key (shown once in this response); the old secret
    stops working at once. Scopes and expiry stay."""
    record = await _own(request, key_id, caller.tenant)
    if record.revoked_at is not None:
        raise InvalidRequestError("a revoked key cannot be rotated; create a new one")
    key = make_key(record.id)
    record.hash = hash_key(key)
    record.rotated_at = utcnow()
    await _store(request).put(record)
    audit(request, caller, "api_key.rotated", subject_type="api_key", subject=key_id)
    return ApiKeyCreated(**_public(record).model_dump(), key=key)


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key (kept for the record, refused from now on)",
    responses=problem_responses(404),
)
async def revoke_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyPublic:
    """Refuse the key from now on, keeping its record for the audit trail."""
    record = await _own(request, key_id, caller.tenant)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await _store(request).put(record)
        audit(request, caller, "api_key.revoked", subject_type="api_key", subject=key_id)
    return _public(record)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an API key",
    responses=problem_responses(404),
)
async def delete_api_key(key_id: str, request: Request, caller: Admin) -> None:
    """Delete an API key's record; the key stops working at once."""
    await _own(request, key_id, caller.tenant)
    await _store(request).delete(key_id)
    audit(request, caller, "api_key.deleted", subject_type="api_key", subject=key_id)
