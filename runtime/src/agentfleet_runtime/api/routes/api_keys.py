"""``/api/v1/api-keys`` (admin scope): create (the key is in the response, once), list,
get, rotate (a new secret, the old one stops working at once), revoke, delete. An admin
manages the keys of its own tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_runtime.api.authn import Admin
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.api.schemas import ItemList
from agentfleet_runtime.auth.apikeys import ApiKeyRecord, ApiKeyStore, hash_key, make_key, new_key
from agentfleet_runtime.auth.base import Scope
from agentfleet_runtime.errors import InvalidRequestError, NotFoundError
from agentfleet_runtime.state.base import utcnow

router = APIRouter(prefix="/api-keys", tags=["api keys"])


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
async def create_api_key(body: ApiKeyCreate, request: Request, caller: Admin) -> ApiKeyCreated:
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
    return ApiKeyCreated(**_public(record).model_dump(), key=key)


@router.get("", summary="List the tenant's API keys (never the keys themselves)")
async def list_api_keys(request: Request, caller: Admin) -> ItemList[ApiKeyPublic]:
    return ItemList(items=[_public(r) for r in await _store(request).list(tenant=caller.tenant)])


@router.get("/{key_id}", summary="Get an API key", responses=problem_responses(404))
async def get_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyPublic:
    return _public(await _own(request, key_id, caller.tenant))


@router.post(
    "/{key_id}/rotate",
    summary="Rotate an API key: a new secret, shown once; the old one stops working",
    responses=problem_responses(404, 422),
)
async def rotate_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyCreated:
    record = await _own(request, key_id, caller.tenant)
    if record.revoked_at is not None:
        raise InvalidRequestError("a revoked key cannot be rotated; create a new one")
    key = make_key(record.id)
    record.hash = hash_key(key)
    record.rotated_at = utcnow()
    await _store(request).put(record)
    return ApiKeyCreated(**_public(record).model_dump(), key=key)


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key (kept for the record, refused from now on)",
    responses=problem_responses(404),
)
async def revoke_api_key(key_id: str, request: Request, caller: Admin) -> ApiKeyPublic:
    record = await _own(request, key_id, caller.tenant)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await _store(request).put(record)
    return _public(record)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an API key",
    responses=problem_responses(404),
)
async def delete_api_key(key_id: str, request: Request, caller: Admin) -> None:
    await _own(request, key_id, caller.tenant)
    await _store(request).delete(key_id)
