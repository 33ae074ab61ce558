"""The ``ToolServer`` port: where an agent's tools run (MCP servers, over stdio or
streamable HTTP). Adapters translate transport errors into :mod:`agentfleet_runtime.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentfleet_runtime.providers.base import ToolSpec


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned. ``is_error`` is a tool-level failure the model should see
    (bad arguments, the tool said no): it is *not* an exception."""

    content: str
    is_error: bool = False
    structured: dict[str, Any] | None = None
    #: Where the full result is stored when ``content`` is a truncated preview
    #: (an :class:`~agentfleet_runtime.artifacts.refs.ArtifactRef` as data).
    artifact: dict[str, Any] | None = None


@runtime_checkable
class ToolServer(Protocol):
    """A connected tool server. ``name`` is the MCPServer's name."""

    name: str

    async def start(self) -> None:
        """Connect (bounded by the server's connect timeout)."""
        ...

    async def list_tools(self) -> list[ToolSpec]:
        """The server's tools (bounded by the discovery timeout)."""
        ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool (bounded by the call timeout)."""
        ...

    async def aclose(self) -> None: ...
