"""Large tool results: the one hook between the agent's tools node and the artifact store.

A result longer than ``inline_limit_bytes`` is stored whole as a ``tool-result`` artifact;
the model gets its first ``inline_limit_bytes`` and a note naming the artifact, and the
tool message and ``tool.result`` event carry the reference. When the store cannot take it
(quota exhausted, store down after retries) the turn goes on: the model gets the same
preview with a note saying it was truncated and why.
"""

from __future__ import annotations

import dataclasses
import logging

from agentfleet_runtime.artifacts import metrics
from agentfleet_runtime.artifacts.base import ArtifactKind
from agentfleet_runtime.artifacts.refs import artifact_url, ref_dict
from agentfleet_runtime.artifacts.service import ArtifactService
from agentfleet_runtime.errors import AgentfleetError
from agentfleet_runtime.tools.base import ToolResult

__all__ = ["ToolResultOffloader", "preview"]

log = logging.getLogger(__name__)

TOOL_RESULT_TYPE = "text/plain; charset=utf-8"


def preview(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of at most ``limit`` UTF-8 bytes (never a broken
    character)."""
    return text.encode()[:limit].decode(errors="ignore")


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResultOffloader:
    """The hook of one turn (``TurnContext.tool_results``): ``await hook(tool, result)``."""

    artifacts: ArtifactService
    tenant: str
    session_id: str

    async def __call__(self, tool: str, result: ToolResult) -> ToolResult:
        limit = self.artifacts.settings.inline_limit_bytes
        data = result.content.encode()
        if len(data) <= limit:
            return result
        shown = preview(result.content, limit)
        shown_bytes = len(shown.encode())
        try:
            meta = await self.artifacts.put(
                self.tenant,
                data,
                kind=ArtifactKind.TOOL_RESULT,
                content_type=TOOL_RESULT_TYPE,
                session_id=self.session_id,
                name=f"tool:{tool}",
            )
        except Exception as exc:  # whatever the store does, the turn goes on
            metrics.TOOL_RESULTS_OFFLOADED.labels("truncated").inc()
            if isinstance(exc, AgentfleetError):
                why = f"{exc.slug}: {exc.detail}"
                log.warning("tool result of %s truncated: %s", tool, why, extra={"tool": tool})
            else:
                why = "internal error"
                log.exception("tool result of %s truncated: storing it failed", tool)
            note = (
                f"[Truncated: this tool result is {len(data)} bytes; only the first "
                f"{shown_bytes} are shown. The full result could not be stored "
                f"({why}), so the rest is not available.]"
            )
            return dataclasses.replace(result, content=f"{shown}\n\n{note}")
        metrics.TOOL_RESULTS_OFFLOADED.labels("stored").inc()
        note = (
            f"[Truncated: this tool result is {len(data)} bytes; the first {shown_bytes} are "
            f"shown above. The full result is stored as artifact {meta.id} "
            f"({meta.content_type}, {meta.size} bytes, {artifact_url(meta.id)}).]"
        )
        return dataclasses.replace(result, content=f"{shown}\n\n{note}", artifact=ref_dict(meta))
