"""Attachments given to the model with a message: a message names artifacts of the
tenant (``attachments: [id]``); the text of a text-type one (``text/*``, JSON, XML, YAML,
CSV...) is appended to the message, up to ``attachment_text_limit_bytes``; any other is
described by name, type and size. What the model saw is what the session keeps as the
user's message."""

from __future__ import annotations

from collections.abc import Sequence

from agentfleet_runtime.artifacts.base import ArtifactMeta
from agentfleet_runtime.artifacts.service import ArtifactService
from agentfleet_runtime.artifacts.tool_results import preview
from agentfleet_runtime.errors import InvalidRequestError, NotFoundError

__all__ = ["is_text", "message_with_attachments"]

_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-ndjson",
        "application/sql",
        "application/csv",
    }
)


def is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def _label(meta: ArtifactMeta) -> str:
    return f"{meta.name or meta.id} ({meta.content_type}, {meta.size} bytes, artifact {meta.id})"


async def message_with_attachments(
    artifacts: ArtifactService | None, tenant: str, content: str, ids: Sequence[str]
) -> str:
    """``content`` followed by the attachments ``ids`` as the model should see them.
    422 ``invalid-request`` for an id the tenant has no artifact under."""
    if not ids:
        return content
    if artifacts is None:
        raise InvalidRequestError("this runtime has no artifact store: attachments are off")
    limit = artifacts.settings.attachment_text_limit_bytes
    parts = [content]
    for artifact_id in dict.fromkeys(ids):  # once each, in order
        try:
            meta = await artifacts.head(tenant, artifact_id)
        except NotFoundError as exc:
            raise InvalidRequestError(
                f"attachment {artifact_id!r} does not exist (or has expired)",
                errors=[{"field": "body.attachments", "message": exc.detail, "type": "not_found"}],
            ) from exc
        if not is_text(meta.content_type):
            parts.append(f"[Attachment {_label(meta)}: binary content, not shown.]")
            continue
        _, data = await artifacts.get(tenant, artifact_id)
        text = data.decode(errors="replace")
        shown = preview(text, limit)
        cut = (
            f"\n[Attachment truncated: the first {len(shown.encode())} of {meta.size} bytes "
            "are shown.]"
            if len(shown) < len(text)
            else ""
        )
        parts.append(
            f"[Attachment {_label(meta)}]\n{shown}{cut}\n[End of attachment {meta.name or meta.id}]"
        )
    return "\n\n".join(parts)
