"""The ``ArtifactStore`` port and what it stores: bytes plus :class:`ArtifactMeta`
(tenant, session, kind, content type, size, created, expires).

Keys are namespaced by tenant (``<tenant>/<artifact id>``): a store never serves one
tenant's artifact under another tenant's name. Artifact ids are unguessable (128 random
bits) and carry their expiry (``art_<expires unix seconds, 0 = never>_<32 hex>``), so a
sweep finds expired artifacts from a key listing alone, without reading each one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

ARTIFACT_ID_PATTERN = r"^art_[0-9]{1,12}_[0-9a-f]{32}$"
_ARTIFACT_ID = re.compile(ARTIFACT_ID_PATTERN)


class ArtifactKind(StrEnum):
    TOOL_RESULT = "tool-result"
    ATTACHMENT = "attachment"
    TRANSCRIPT = "transcript"


class ArtifactMeta(BaseModel):
    """What is known about a stored artifact (kept beside its bytes)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=ARTIFACT_ID_PATTERN)
    tenant: str
    kind: ArtifactKind
    content_type: str
    size: int = Field(ge=0)
    created_at: datetime
    #: ``None``: kept until deleted.
    expires_at: datetime | None = None
    session_id: str | None = None
    #: A file name (attachments) or what produced it (``tool:<name>``).
    name: str | None = None
    sha256: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def new_artifact_id(expires_at: datetime | None) -> str:
    stamp = 0 if expires_at is None else int(expires_at.timestamp())
    return f"art_{stamp}_{secrets.token_hex(16)}"


def valid_artifact_id(artifact_id: str) -> bool:
    """Whether ``artifact_id`` has the shape of an id (checked before it becomes a path
    or a key: nothing else reaches a store)."""
    return bool(_ARTIFACT_ID.match(artifact_id))


def id_expiry(artifact_id: str) -> datetime | None:
    """The expiry an id carries (``None``: never expires, or not an id)."""
    if not valid_artifact_id(artifact_id):
        return None
    stamp = int(artifact_id.split("_")[1])
    return None if stamp == 0 else datetime.fromtimestamp(stamp, UTC)


def expired_ids(ids: Iterable[tuple[str, str]], now: datetime) -> list[tuple[str, str]]:
    """The ``(tenant, id)`` pairs whose id says they expired by ``now``."""
    result = []
    for tenant, artifact_id in ids:
        expiry = id_expiry(artifact_id)
        if expiry is not None and expiry <= now:
            result.append((tenant, artifact_id))
    return result


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifacts' bytes and metadata live. Callers pass valid tenants and ids;
    ``None``/``False`` answers mean "no such artifact". Adapters raise
    :mod:`agentfleet_runtime.errors` (or :mod:`.errors`) for store failures."""

    #: ``filesystem`` or ``s3`` (metrics, logs).
    name: str

    async def put(self, meta: ArtifactMeta, data: bytes) -> None: ...

    async def get(self, tenant: str, artifact_id: str) -> tuple[ArtifactMeta, bytes] | None: ...

    async def head(self, tenant: str, artifact_id: str) -> ArtifactMeta | None: ...

    async def delete(self, tenant: str, artifact_id: str) -> bool: ...

    async def list_expired(self, now: datetime, *, limit: int = 1000) -> list[tuple[str, str]]:
        """Up to ``limit`` ``(tenant, id)`` pairs of artifacts expired by ``now``."""
        ...

    async def usage(self, tenant: str) -> int:
        """Bytes ``tenant`` keeps stored (artifacts not expired yet)."""
        ...

    async def aclose(self) -> None: ...
