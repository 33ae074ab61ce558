"""The tool-result hook on its own: results within the limit pass untouched, longer ones
are stored with a UTF-8-safe preview, and a store that breaks never breaks the turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentfleet_runtime.artifacts import ArtifactService, ArtifactSettings
from agentfleet_runtime.artifacts.filesystem import FilesystemArtifactStore
from agentfleet_runtime.artifacts.tool_results import ToolResultOffloader, preview
from agentfleet_runtime.tools.base import ToolResult


def test_preview_never_cuts_a_character() -> None:
    assert preview("ééé", 3) == "é"  # 2 bytes each: the third byte would split one
    assert preview("abc", 10) == "abc"


async def test_short_results_pass_and_long_ones_are_stored(tmp_path: Path) -> None:
    artifacts = ArtifactService(
        FilesystemArtifactStore(tmp_path), ArtifactSettings(inline_limit_bytes=256)
    )
    hook = ToolResultOffloader(artifacts, "acme", "ses_1")
    short = ToolResult(content="x" * 256, structured={"n": 1})
    assert await hook("echo", short) is short

    long = ToolResult(content="ü" * 300, is_error=True)  # 600 bytes
    result = await hook("echo", long)
    assert result.is_error is True
    assert result.artifact is not None
    assert result.content.startswith("ü" * 128 + "\n\n[Truncated: this tool result is 600 bytes")
    _, stored = await artifacts.get("acme", result.artifact["id"])
    assert stored.decode() == "ü" * 300
    assert result.artifact["name"] == "tool:echo"


async def test_a_broken_store_truncates_instead_of_failing(tmp_path: Path) -> None:
    class Broken(FilesystemArtifactStore):
        async def put(self, *_: Any) -> None:
            raise RuntimeError("bug")

    artifacts = ArtifactService(Broken(tmp_path), ArtifactSettings(inline_limit_bytes=256))
    result = await ToolResultOffloader(artifacts, "acme", "ses_1")("echo", ToolResult("y" * 999))
    assert result.artifact is None
    assert result.content == "y" * 256 + (
        "\n\n[Truncated: this tool result is 999 bytes; only the first 256 are shown. The "
        "full result could not be stored (internal error), so the rest is not available.]"
    )
