"""The OpenAI adapter: Chat Completions through the official ``openai`` SDK — OpenAI itself
and every OpenAI-compatible server (vLLM, Ollama, LiteLLM, agentfleet's fake) through
``base_url``.

Mapping of agentfleet's conversation onto Chat Completions:

* ``system`` → a leading ``system`` message;
* an assistant message → ``content`` (``null`` when it only calls tools) and
  ``tool_calls`` (``{"type": "function", "function": {"name", "arguments": <JSON text>}}``);
* a tool result → a ``role: tool`` message with its ``tool_call_id`` (Chat Completions has
  no error flag: an error result is sent as its text);
* tools → ``{"type": "function", "function": {name, description, parameters}}``.

A non-streaming call goes through the SDK's generic ``post`` with the body already in wire
format and reads the answer into a small model of the fields used (:class:`_Completion`):
``chat.completions.create`` would walk every parameter against its TypedDicts and build the
SDK's full response models, together 0.3 ms of CPU per call, a third of the SDK's cost
(docs/performance.md). Auth, headers, timeouts and error statuses are the SDK's either way.

Streams ask for usage (``stream_options.include_usage``) and accumulate tool-call deltas
by ``index``. The SDK's retries are off (``max_retries=0``): the resilience layer owns
retries. Errors, including those raised while a stream is read, become
:mod:`agentfleet_runtime.errors`. Stop reasons use Anthropic's vocabulary
(``end_turn``, ``tool_use``, ``max_tokens``) so that callers see one set.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, NoReturn, TypedDict

import httpx2
import openai
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
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

MaxTokensParameter = Literal["max_tokens", "max_completion_tokens"]


class _MaxTokens(TypedDict, total=False):
    max_tokens: int
    max_completion_tokens: int


_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}


#: The HTTP status an error object sent inside a stream stands for (by code, then type).
_IN_STREAM_ERROR_STATUS = {
    "rate_limit_exceeded": 429,
    "invalid_api_key": 401,
    "model_not_found": 404,
    "invalid_request_error": 400,
    "server_error": 500,
}


def to_openai_messages(
    system: str, messages: Sequence[Message]
) -> list[ChatCompletionMessageParam]:
    """agentfleet messages (and the system prompt) as Chat Completions ``messages``."""
    wire: list[ChatCompletionMessageParam] = []
    if system:
        wire.append({"role": "system", "content": system})
    for message in messages:
        if message["role"] == "user":
            wire.append({"role": "user", "content": message["content"]})
        elif message["role"] == "tool":
            wire.append(
                {
                    "role": "tool",
                    "tool_call_id": message.get("tool_call_id", ""),
                    "content": message["content"],
                }
            )
        else:
            calls = message.get("tool_calls", [])
            tool_calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": json.dumps(call["arguments"], ensure_ascii=False),
                    },
                }
                for call in calls
            ]
            if tool_calls:
                wire.append(
                    {
                        "role": "assistant",
                        "content": message["content"] or None,
                        "tool_calls": tool_calls,
                    }
                )
            else:
                wire.append({"role": "assistant", "content": message["content"]})
    return wire


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in tools
    ]


def _stop_reason(reason: str | None, has_calls: bool) -> str:
    if reason is None:
        return "tool_use" if has_calls else "end_turn"
    return _STOP_REASONS.get(reason, reason)


def _default_max_tokens_parameter(base_url: str | None) -> MaxTokensParameter:
    # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
    # OpenAI-compatible servers (vLLM, Ollama...) have long understood max_tokens.
    if base_url is None or "api.openai.com" in base_url:
        return "max_completion_tokens"
    return "max_tokens"


class _Function(BaseModel):
    name: str
    arguments: str | None = None


class _ToolCall(BaseModel):
    id: str = ""
    type: str = "function"
    function: _Function | None = None


class _AnswerMessage(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _AnswerMessage
    finish_reason: str | None = None


class _CompletionUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Completion(BaseModel):
    """The fields of a chat completion the runtime reads (others are ignored)."""

    model: str = ""
    choices: list[_Choice] = []
    usage: _CompletionUsage | None = None


def conversation_body(request: ModelRequest) -> dict[str, Any]:
    """The conversation and tools, already in wire format.

    Passed as ``messages=``/``tools=``, the SDK walks every message against its TypedDict
    params on every call (``async_maybe_transform``), which for our plain-JSON messages
    changes nothing and measured 37% of the runtime's CPU in the turn benchmark
    (docs/performance.md). A stream sends it as ``extra_body`` (the SDK's public way to
    send JSON as is); a plain call sends it through ``post``.
    """
    body: dict[str, Any] = {"messages": to_openai_messages(request.system, request.messages)}
    if request.tools:
        body["tools"] = to_openai_tools(request.tools)
    return body


class OpenAIProvider:
    """A :class:`~agentfleet_runtime.providers.base.ModelProvider` for OpenAI's Chat
    Completions API, or any OpenAI-compatible server at ``base_url``."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        name: str = "openai",
        http_client: httpx2.AsyncClient | None = None,
        http_pool: HttpPool | None = None,
        max_tokens_parameter: MaxTokensParameter | None = None,
    ) -> None:
        """``http_client``, when given, is shared and not closed by :meth:`aclose`.
        ``max_tokens_parameter`` is ``max_completion_tokens`` for OpenAI itself and
        ``max_tokens`` for other servers unless set."""
        self.name = name
        self.dependency = f"llm:{name}"
        self._max_tokens_parameter = max_tokens_parameter or _default_max_tokens_parameter(base_url)
        self._owns_http_client = http_client is None
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            http_client=http_client if http_client is not None else create_http_client(http_pool),
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        body = {"model": request.model, **conversation_body(request), **self._max_tokens(request)}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        try:
            # POST /chat/completions as chat.completions.create sends it (module docstring).
            answer = await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=body,
                options={"timeout": request.timeout_seconds},
            )
        except (openai.APIError, httpx2.RequestError) as exc:
            self._raise(exc)
        completion = read_answer(answer.content, _Completion, dependency=self.dependency)
        if not completion.choices:
            raise UpstreamServerError(
                f"{self.dependency} answered without a choice", dependency=self.dependency
            )
        choice = completion.choices[0]
        tool_calls: list[ToolCall] = [
            {
                "id": call.id,
                "name": call.function.name,
                "arguments": parse_arguments(call.function.arguments),
            }
            for call in choice.message.tool_calls or []
            if call.type == "function" and call.function is not None
        ]
        usage = completion.usage
        return self._final(
            choice.message.content or "",
            tool_calls,
            choice.finish_reason,
            completion.model or request.model,
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        text: list[str] = []
        calls: dict[int, list[str]] = {}  # index → [id, name, arguments...]
        model = request.model
        finish_reason: str | None = None
        usage = Usage()
        try:
            chunks = await self._client.chat.completions.create(
                model=request.model,
                messages=[],  # sent in extra_body: see conversation_body()
                extra_body=conversation_body(request),
                temperature=request.temperature if request.temperature is not None else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
                timeout=request.timeout_seconds,
                **self._max_tokens(request),
            )
            async with chunks:
                async for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta.content:
                            text.append(delta.content)
                            yield TextDelta(delta.content)
                        for part in delta.tool_calls or []:
                            entry = calls.setdefault(part.index, ["", ""])
                            if part.id:
                                entry[0] = part.id
                            if part.function is not None:
                                if part.function.name and not entry[1]:
                                    entry[1] = part.function.name
                                if part.function.arguments:
                                    entry.append(part.function.arguments)
                        if choice.finish_reason is not None:
                            finish_reason = choice.finish_reason
        except (openai.APIError, httpx2.RequestError) as exc:
            self._raise(exc)
        if finish_reason is None:
            raise DependencyConnectionError(
                f"{self.dependency} ended the stream before the answer was complete",
                dependency=self.dependency,
            )
        tool_calls: list[ToolCall] = [
            {"id": entry[0], "name": entry[1], "arguments": parse_arguments("".join(entry[2:]))}
            for _, entry in sorted(calls.items())
        ]
        yield self._final("".join(text), tool_calls, finish_reason, model, usage)

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self._client.close()

    # -- helpers -----------------------------------------------------------------------

    def _max_tokens(self, request: ModelRequest) -> _MaxTokens:
        if self._max_tokens_parameter == "max_tokens":
            return {"max_tokens": request.max_tokens}
        return {"max_completion_tokens": request.max_tokens}

    @staticmethod
    def _final(
        text: str, tool_calls: list[ToolCall], finish_reason: str | None, model: str, usage: Usage
    ) -> ModelResponse:
        message: Message = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return ModelResponse(
            message=message,
            stop_reason=_stop_reason(finish_reason, bool(tool_calls)),
            model=model,
            usage=usage,
        )

    def _raise(self, exc: openai.APIError | httpx2.RequestError) -> NoReturn:
        raise self._translate(exc) from exc

    def _translate(self, exc: openai.APIError | httpx2.RequestError) -> DependencyError:
        dependency = self.dependency
        if isinstance(exc, httpx2.RequestError):
            return transport_error(exc, dependency=dependency)
        if isinstance(exc, openai.APITimeoutError):
            return DependencyTimeoutError(f"{dependency} timed out", dependency=dependency)
        if isinstance(exc, openai.APIConnectionError):
            return DependencyConnectionError(
                f"{dependency} is unreachable: {exc.message}", dependency=dependency
            )
        if isinstance(exc, openai.APIStatusError):
            return http_status_error(
                exc.status_code,
                error_message(exc.body, exc.message),
                dependency=dependency,
                headers=exc.response.headers,
                quota_exhausted=exc.code == "insufficient_quota",
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return UpstreamServerError(
                f"{dependency} sent a response we could not read: {exc.message}",
                dependency=dependency,
            )
        # An error object sent inside a stream that had started fine (HTTP 200).
        status = _IN_STREAM_ERROR_STATUS.get(exc.code or "") or _IN_STREAM_ERROR_STATUS.get(
            exc.type or "", 500
        )
        return http_status_error(
            status,
            f"{error_message(exc.body, exc.message)} (in the stream)",
            dependency=dependency,
            quota_exhausted=exc.code == "insufficient_quota",
        )
