"""The ``ModelProvider`` port: how the agent calls a language model.

Adapters (``anthropic``, ``openai``, ...) translate between this provider-neutral shape and
their SDK, and translate SDK exceptions into :mod:`agentfleet_runtime.errors` at the
boundary. The SDKs' own retries are off: the resilience layer owns retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentfleet_runtime.messages import Message


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: name, description and a JSON Schema for its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The model's complete answer: an assistant message (text and/or tool calls)."""

    message: Message
    stop_reason: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's text, as it streams."""

    text: str


StreamItem = TextDelta | ModelResponse


@runtime_checkable
class ModelProvider(Protocol):
    """A language model API. ``name`` identifies the provider in metrics and logs."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """One model call, returned whole."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """One model call, streamed: zero or more :class:`TextDelta`, then exactly one
        :class:`ModelResponse` (the same answer :meth:`complete` would give) last."""
        ...

    async def aclose(self) -> None: ...
