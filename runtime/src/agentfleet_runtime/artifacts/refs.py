"""``ArtifactRef``: how messages, events and API responses name a stored artifact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agentfleet_runtime.api.versioning import API_PREFIX
from agentfleet_runtime.artifacts.base import ArtifactKind, ArtifactMeta


class ArtifactRef(BaseModel):
    id: str = Field(examples=["art_1767225600_9f86d081884c7d659a2feaa0c55ad015"])
    kind: ArtifactKind
    content_type: str
    size: int = Field(description="Bytes")
    name: str | None = None
    session_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = Field(description="`null`: kept until deleted")
    sha256: str | None = None
    url: str = Field(description="Where to download it (same credentials as the API)")


def artifact_url(artifact_id: str) -> str:
    return f"{API_PREFIX}/artifacts/{artifact_id}"


def artifact_ref(meta: ArtifactMeta) -> ArtifactRef:
    return ArtifactRef(
        id=meta.id,
        kind=meta.kind,
        content_type=meta.content_type,
        size=meta.size,
        name=meta.name,
        session_id=meta.session_id,
        created_at=meta.created_at,
        expires_at=meta.expires_at,
        sha256=meta.sha256,
        url=artifact_url(meta.id),
    )


def ref_dict(meta: ArtifactMeta) -> dict[str, Any]:
    """The reference as JSON-ready data (for messages and events)."""
    return artifact_ref(meta).model_dump(mode="json")
