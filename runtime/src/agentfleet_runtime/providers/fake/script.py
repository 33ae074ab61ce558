"""What the fake provider answers and what it saw: the scriptable part of the fake.

Tests push :class:`FakeReply` objects onto a :class:`FakeScript`; each request the fake
receives takes the next one (first in, first out). When none is left the fake asks its
:attr:`FakeScript.fallback` reply, or else the deterministic offline model. Every request
is recorded as a :class:`RecordedRequest`, in the wire format it arrived in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

WireFormat = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call the fake model makes. ``id`` is generated (deterministically) if unset."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class FakeReply:
    """One scripted answer.

    * ``text`` / ``tool_calls``: the assistant's answer (text streams word by word).
    * ``latency_seconds``: wait before answering (aborted early if the client goes away).
    * ``chunk_delay_seconds``: wait between streamed chunks (a slow stream).
    * ``status``: an HTTP error status instead of an answer, with the provider's real error
      body (``error_message`` as its message) and ``Retry-After: retry_after`` when set.
    * ``drop_after_chunks``: close the connection after this many content chunks (text
      pieces and tool-argument pieces), without finishing the response. For a
      non-streaming request the body is cut in half.
    * ``error_after_chunks`` (with an error ``status``): a stream starts fine (HTTP 200) and,
      after this many content chunks, carries the provider's in-stream error event for
      ``status`` (e.g. Anthropic's ``overloaded_error``) and ends. A non-streaming request
      gets the plain error status.
    * ``input_tokens`` / ``output_tokens``: the usage to report (estimated if unset).
    """

    text: str = ""
    tool_calls: Sequence[FakeToolCall] = ()
    latency_seconds: float = 0.0
    status: int = 200
    retry_after: float | None = None
    error_message: str | None = None
    drop_after_chunks: int | None = None
    chunk_delay_seconds: float = 0.0
    error_after_chunks: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def is_error(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the fake received, as sent on the wire.

    ``messages`` and ``tools`` are the raw JSON of the request (OpenAI or Anthropic shape);
    ``system`` is Anthropic's top-level ``system`` (OpenAI keeps it among ``messages``);
    ``api_key`` is the bearer token or ``x-api-key`` header the client sent.
    """

    wire: WireFormat
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    system: Any
    body: dict[str, Any]
    api_key: str | None
    headers: dict[str, str]

    @property
    def tool_names(self) -> list[str]:
        names: list[str] = []
        for tool in self.tools:
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
        return names


class FakeScript:
    """The replies to give, in order, and the requests received.

    ``requests`` keeps the last ``max_recorded`` requests (a long benchmark must not grow
    memory without bound). ``fallback``, when set, answers every request once the queue is
    empty (instead of the offline model), e.g. a fixed latency for a benchmark.
    """

    def __init__(
        self,
        replies: Iterable[FakeReply] = (),
        *,
        fallback: FakeReply | None = None,
        max_recorded: int | None = 10_000,
        models: Sequence[str] = ("fake-model", "offline"),
    ) -> None:
        self.replies: deque[FakeReply] = deque(replies)
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self.fallback = fallback
        self.models = tuple(models)

    def push(self, *replies: FakeReply) -> FakeScript:
        """Queue replies (returns the script, for chaining)."""
        self.replies.extend(replies)
        return self

    def push_text(self, text: str, **options: Any) -> FakeScript:
        return self.push(FakeReply(text=text, **options))

    def push_tool_call(self, name: str, arguments: Mapping[str, Any] | None = None) -> FakeScript:
        return self.push(FakeReply(tool_calls=[FakeToolCall(name, dict(arguments or {}))]))

    def push_error(
        self, status: int, *, retry_after: float | None = None, message: str | None = None
    ) -> FakeScript:
        return self.push(FakeReply(status=status, retry_after=retry_after, error_message=message))

    def next_reply(self) -> FakeReply | None:
        """The scripted reply for the next request; ``None`` means "ask the offline model"."""
        if self.replies:
            return self.replies.popleft()
        return self.fallback

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise LookupError("the fake provider has received no request")
        return self.requests[-1]

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
