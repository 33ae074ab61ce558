"""The Anthropic adapter: the Messages API through the official ``anthropic`` SDK.

Mapping of agentfleet's conversation onto the Messages API:

* ``system`` → the top-level ``system`` parameter;
* an assistant message → ``text`` and ``tool_use`` blocks;
* tool results → ``tool_result`` blocks (``is_error`` kept) in a ``user`` message;
  consecutive results, and a user message that follows them, share that one message (the
  API wants every result of a turn right after it, results first);
* tools → ``{name, description, input_schema}``.

A non-streaming call goes through the SDK's generic ``post`` with the body already in wire
format and reads the answer into a small model of the fields used (:class:`_Answer`), as
the OpenAI adapter does and for the same reason (its module docstring).

The SDK's retries are off (``max_retries=0``): the resilience layer owns retries. Errors,
including those raised while a stream is read, become :mod:`agentfleet_runtime.errors`.
``ModelRequest.temperature`` is not sent: the Messages API of the anthropic 2.x SDK has no
temperature parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, NoReturn

import anthropic
import httpx2
from anthropic.types import (
    ContentBlockParam,
    MessageContentParam,
    MessageParam,
    RawMessageStreamEvent,
    ToolParam,
    ToolResultBlockParam,
)
from pydantic import BaseModel

from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    UpstreamServerError,
)
from agentfleet_runtime.messages import Message, ToolCall
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers._http import (
    create_http_client,
    error_message,
    http_status_error,
    parse_arguments,
    read_answer,
    transport_error,
)
from agentfleet_runtime.providers.base import (
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    ToolSpec,
    Usage,
)

#: The HTTP status of each Messages API error ``type`` (for errors sent mid-stream, whose
#: response status is 200).
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def to_anthropic_messages(messages: Sequence[Message]) -> list[MessageParam]:
    """agentfleet messages as Messages API ``messages``."""
    turns: list[tuple[Literal["user", "assistant"], list[ContentBlockParam]]] = []
    for message in messages:
        role: Literal["user", "assistant"] = (
            "assistant" if message["role"] == "assistant" else "user"
        )
        blocks: list[ContentBlockParam] = []
        if message["role"] == "tool":
            result: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": message["content"],
            }
            if message.get("is_error"):
                result["is_error"] = True
            blocks.append(result)
        else:
            calls = message.get("tool_calls", [])
            if message["content"] or not calls:
                blocks.append({"type": "text", "text": message["content"]})
            blocks.extend(
                {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                for c in calls
            )
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    wire: list[MessageParam] = []
    for role, blocks in turns:
        first = blocks[0]
        # A lone text block is sent as a plain string, as people write it.
        content: MessageContentParam = (
            first["text"] if len(blocks) == 1 and first["type"] == "text" else blocks
        )
        if role == "user":
            wire.append({"role": "user", "content": content})
        else:
            wire.append({"role": "assistant", "content": content})
    return wire


def to_anthropic_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema}
        for t in tools
    ]


def _stop_reason(reason: str | None, has_calls: bool) -> str:
    if reason is None:
        return "tool_use" if has_calls else "end_turn"
    return reason


class _Block(BaseModel):
    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] = {}


class _AnswerUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class _Answer(BaseModel):
    """The fields of a Messages API answer the runtime reads (others are ignored)."""

    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _AnswerUsage = _AnswerUsage()


def conversation_body(request: ModelRequest) -> dict[str, Any]:
    """System prompt, conversation and tools, already in wire format, for ``extra_body``
    or ``post`` (the SDK otherwise re-walks every message against its TypedDict params on
    each call; see :func:`agentfleet_runtime.providers.openai.conversation_body`)."""
    body: dict[str, Any] = {"messages": to_anthropic_messages(request.messages)}
    if request.system:
        body["system"] = request.system
    if request.tools:
        body["tools"] = to_anthropic_tools(request.tools)
    return body


class AnthropicProvider:
    """A :class:`~agentfleet_runtime.providers.base.ModelProvider` for Anthropic's API (or
    anything that speaks the Messages API at ``base_url``)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        name: str = "anthropic",
        http_client: httpx2.AsyncClient | None = None,
        http_pool: HttpPool | None = None,
    ) -> None:
        """``http_client``, when given, is shared and not closed by :meth:`aclose`."""
        self.name = name
        self.dependency = f"llm:{name}"
        self._owns_http_client = http_client is None
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            http_client=http_client if http_client is not None else create_http_client(http_pool),
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        body = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            **conversation_body(request),
        }
        try:
            # POST /v1/messages as messages.create sends it (module docstring).
            answer = await self._client.post(
                "/v1/messages",
                cast_to=httpx2.Response,
                body=body,
                options={"timeout": request.timeout_seconds},
            )
        except (anthropic.APIError, httpx2.RequestError) as exc:
            self._raise(exc)
        message = read_answer(answer.content, _Answer, dependency=self.dependency)
        return self._response(message, request.model)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        text: list[str] = []
        calls: dict[int, tuple[str, str, list[str]]] = {}  # block index → id, name, json
        model = request.model
        stop_reason: str | None = None
        input_tokens = output_tokens = 0
        finished = False
        try:
            events = await self._client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens,
                messages=[],  # sent in extra_body: see conversation_body()
                extra_body=conversation_body(request),
                stream=True,
                timeout=request.timeout_seconds,
            )
            async with events:
                event: RawMessageStreamEvent
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model
                        input_tokens = event.message.usage.input_tokens
                        output_tokens = event.message.usage.output_tokens
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            calls[event.index] = (block.id, block.name, [])
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            text.append(delta.text)
                            yield TextDelta(delta.text)
                        elif delta.type == "input_json_delta" and event.index in calls:
                            calls[event.index][2].append(delta.partial_json)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        output_tokens = event.usage.output_tokens
                        if event.usage.input_tokens is not None:
                            input_tokens = event.usage.input_tokens
                    elif event.type == "message_stop":
                        finished = True
        except (anthropic.APIError, httpx2.RequestError) as exc:
            self._raise(exc)
        if not finished:
            raise DependencyConnectionError(
                f"{self.dependency} ended the stream before the message was complete",
                dependency=self.dependency,
            )
        tool_calls: list[ToolCall] = [
            {"id": call_id, "name": name, "arguments": parse_arguments("".join(parts))}
            for _, (call_id, name, parts) in sorted(calls.items())
        ]
        yield self._final(
            "".join(text), tool_calls, stop_reason, model, input_tokens, output_tokens
        )

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self._client.close()

    # -- helpers -----------------------------------------------------------------------

    def _response(self, message: _Answer, requested_model: str) -> ModelResponse:
        text: list[str] = []
        tool_calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                tool_calls.append(
                    {"id": block.id, "name": block.name, "arguments": dict(block.input)}
                )
        return self._final(
            "".join(text),
            tool_calls,
            message.stop_reason,
            message.model or requested_model,
            message.usage.input_tokens,
            message.usage.output_tokens,
        )

    @staticmethod
    def _final(
        text: str,
        tool_calls: list[ToolCall],
        stop_reason: str | None,
        model: str,
        input_tokens: int,
        output_tokens: int,
    ) -> ModelResponse:
        message: Message = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return ModelResponse(
            message=message,
            stop_reason=_stop_reason(stop_reason, bool(tool_calls)),
            model=model,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        )

    def _raise(self, exc: anthropic.APIError | httpx2.RequestError) -> NoReturn:
        raise self._translate(exc) from exc

    def _translate(self, exc: anthropic.APIError | httpx2.RequestError) -> DependencyError:
        dependency = self.dependency
        if isinstance(exc, httpx2.RequestError):
            return transport_error(exc, dependency=dependency)
        if isinstance(exc, anthropic.APITimeoutError):
            return DependencyTimeoutError(f"{dependency} timed out", dependency=dependency)
        if isinstance(exc, anthropic.APIConnectionError):
            return DependencyConnectionError(
                f"{dependency} is unreachable: {exc.message}", dependency=dependency
            )
        if isinstance(exc, anthropic.APIStatusError):
            error_type = exc.type if isinstance(exc.type, str) else None
            status = exc.status_code
            if status < 400:  # an error event inside a stream that had started fine
                status = _ERROR_TYPE_STATUS.get(error_type or "", 500)
            message = exc.api_message or error_message(exc.body, exc.message)
            return http_status_error(
                status,
                f"{message} ({error_type})" if error_type else message,
                dependency=dependency,
                headers=exc.response.headers,
                quota_exhausted=error_type == "billing_error",
            )
        return UpstreamServerError(
            f"{dependency} sent a response we could not read: {exc.message}", dependency=dependency
        )
