"""API keys: created once and shown once, stored hashed, scoped, expiring, rotatable and
revocable.

A key reads ``af_<id>_<secret>``: the id finds the record, the SHA-256 of the whole key is
compared in constant time with the stored hash. The secret has 256 bits of entropy, so a
fast hash is enough (no password-hashing function needed: there is nothing to
brute-force). The plain key exists only in the response that created (or rotated) it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from agentfleet_runtime.auth.base import (
    AuthenticationError,
    Principal,
    Scope,
    TokenExpiredError,
)
from agentfleet_runtime.state.base import utcnow

KEY_PREFIX = "af_"
_KEY = re.compile(r"^af_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")


class ApiKeyRecord(BaseModel):
    """What is stored about a key (never the key itself)."""

    id: str
    tenant: str
    name: str
    scopes: list[Scope]
    #: SHA-256 (hex) of the whole key.
    hash: str
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rotated_at: datetime | None = None

    def active(self, now: float | None = None) -> bool:
        now = now or time.time()
        expired = self.expires_at is not None and self.expires_at.timestamp() <= now
        return self.revoked_at is None and not expired


class ApiKeyStore(Protocol):
    """API key records (memory: one process; Redis: shared by replicas)."""

    async def put(self, record: ApiKeyRecord) -> None: ...
    async def get(self, key_id: str) -> ApiKeyRecord | None: ...
    async def list(self, *, tenant: str | None = None) -> list[ApiKeyRecord]: ...
    async def delete(self, key_id: str) -> bool: ...


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def make_key(key_id: str) -> str:
    """A new key for ``key_id`` (256 random bits)."""
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def new_key() -> tuple[str, str]:
    """A fresh ``(id, key)``."""
    key_id = secrets.token_hex(8)
    return key_id, make_key(key_id)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


class ApiKeyAuthenticator:
    required = True

    def __init__(self, store: ApiKeyStore) -> None:
        self._store = store

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationError("an API key or bearer token is required")
        match = _KEY.match(token)
        record = await self._store.get(match["id"]) if match else None
        # Compare even when there is no record, so that timing says nothing either way.
        expected = record.hash if record else "0" * 64
        if not hmac.compare_digest(expected, hash_key(token)) or record is None:
            raise AuthenticationError("the API key is not valid")
        if record.revoked_at is not None:
            raise AuthenticationError("the API key has been revoked")
        if not record.active():
            raise TokenExpiredError("the API key has expired")
        return Principal(
            subject=f"api-key:{record.id}",
            scopes=[s.value for s in record.scopes],
            expires_at=record.expires_at.timestamp() if record.expires_at else None,
            tenant=record.tenant,
            key_id=record.id,
        )
