"""Both model adapters, through their official SDKs, against the fake provider over real
HTTP: answers, tool calls, conversations on the wire, usage, errors, no SDK retries."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyNotFoundError,
    DependencyTimeoutError,
    OverloadedError,
    QuotaExceededError,
    RateLimitedError,
    UpstreamBadRequestError,
    UpstreamServerError,
)
from agentfleet_runtime.messages import (
    Message,
    ToolCall,
    assistant_message,
    tool_message,
    user_message,
)
from agentfleet_runtime.providers.anthropic import AnthropicProvider
from agentfleet_runtime.providers.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    TextDelta,
    ToolSpec,
    Usage,
)
from agentfleet_runtime.providers.fake import FakeReply, FakeToolCall
from agentfleet_runtime.providers.openai import OpenAIProvider
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.servers import free_port

CALCULATE = ToolSpec(
    name="calculate",
    description="Evaluate an arithmetic expression.",
    input_schema={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)
CURRENT_TIME = ToolSpec(
    name="current_time",
    description="The current time.",
    input_schema={"type": "object", "properties": {"timezone": {"type": "string"}}},
)


def request_for(messages: list[Message], **options: Any) -> ModelRequest:
    options.setdefault("tools", [CALCULATE, CURRENT_TIME])
    return ModelRequest(model="fake-model", system="Be brief.", messages=messages, **options)


def provider_at(wire: str, url: str) -> ModelProvider:
    """The ``wire`` adapter for a server at ``url`` (not the shared fake)."""
    if wire == "openai":
        return OpenAIProvider(api_key="k", base_url=url + "/v1")
    return AnthropicProvider(api_key="k", base_url=url)


async def collect(
    provider: ModelProvider, request: ModelRequest
) -> tuple[list[str], ModelResponse]:
    """The stream's text deltas and its final response (checking the stream contract)."""
    items = [item async for item in provider.stream(request)]
    assert items, "the stream yielded nothing"
    *deltas, final = items
    assert isinstance(final, ModelResponse)
    assert all(isinstance(d, TextDelta) for d in deltas)
    return [d.text for d in deltas if isinstance(d, TextDelta)], final


async def ask(provider: ModelProvider, request: ModelRequest, *, streaming: bool) -> ModelResponse:
    """``complete`` or ``stream``, whichever the test is about."""
    if streaming:
        return (await collect(provider, request))[1]
    return await provider.complete(request)


def wire_of(provider: ModelProvider) -> str:
    return "openai" if isinstance(provider, OpenAIProvider) else "anthropic"


async def test_names_and_sdk_clients_have_no_retries(provider: ModelProvider) -> None:
    assert provider.name == wire_of(provider)
    assert isinstance(provider, ModelProvider)
    assert provider._client.max_retries == 0  # type: ignore[attr-defined]


async def test_complete_returns_text_and_usage(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(text="Hello from the fake.", input_tokens=11, output_tokens=7))
    response = await provider.complete(request_for([user_message("hi")]))
    assert response.message == {"role": "assistant", "content": "Hello from the fake."}
    assert response.stop_reason == "end_turn"
    assert response.model == "fake-model"
    assert response.usage == Usage(input_tokens=11, output_tokens=7)
    [sent] = fake.script.requests
    assert sent.wire == wire_of(provider)
    assert sent.stream is False
    assert sent.model == "fake-model"


async def test_stream_yields_text_in_several_deltas_then_the_response(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    text = "Streaming works one word at a time."
    fake.script.push(FakeReply(text=text, input_tokens=5, output_tokens=8))
    deltas, final = await collect(provider, request_for([user_message("stream please")]))
    assert len(deltas) == len(text.split())
    assert "".join(deltas) == text
    assert final.message == {"role": "assistant", "content": text}
    assert final.stop_reason == "end_turn"
    assert final.usage == Usage(input_tokens=5, output_tokens=8)
    assert fake.script.requests[0].stream is True


ARGUMENTS = {
    "query": 'ünïcödé with "quotes" and a long enough value to need several chunks',
    "limit": 3,
    "nested": {"flags": [True, False, None], "ratio": 0.25},
}


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_tool_calls_round_trip(
    provider: ModelProvider, fake: RunningFakeProvider, streaming: bool
) -> None:
    fake.script.push(
        FakeReply(
            text="Let me look.",
            tool_calls=[FakeToolCall("lookup", ARGUMENTS), FakeToolCall("current_time")],
        )
    )
    request = request_for([user_message("look it up")])
    if streaming:
        deltas, response = await collect(provider, request)
        assert "".join(deltas) == "Let me look."
    else:
        response = await provider.complete(request)
    assert response.stop_reason == "tool_use"
    assert response.message["content"] == "Let me look."
    calls = response.message.get("tool_calls", [])
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("lookup", ARGUMENTS),
        ("current_time", {}),
    ]
    assert len({c["id"] for c in calls}) == 2
    assert all(c["id"] for c in calls)


async def test_tools_request_options_and_timeout_on_the_wire(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    await provider.complete(
        request_for([user_message("hi")], max_tokens=321, temperature=0.25, timeout_seconds=12.5)
    )
    [sent] = fake.script.requests
    assert sent.headers["x-stainless-read-timeout"] == "12.5"
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert sent.body["max_tokens"] == 321
    if sent.wire == "openai":
        assert sent.api_key == "sk-test"
        assert sent.messages[0] == {"role": "system", "content": "Be brief."}
        assert sent.body["temperature"] == 0.25
        assert sent.tools[0] == {
            "type": "function",
            "function": {
                "name": "calculate",
                "description": "Evaluate an arithmetic expression.",
                "parameters": CALCULATE.input_schema,
            },
        }
    else:
        assert sent.api_key == "sk-ant-test"
        assert sent.system == "Be brief."
        assert sent.messages == [{"role": "user", "content": "hi"}]
        assert sent.tools[0] == {
            "name": "calculate",
            "description": "Evaluate an arithmetic expression.",
            "input_schema": CALCULATE.input_schema,
        }
    assert sent.tool_names == ["calculate", "current_time"]


async def test_stream_asks_openai_for_usage(fake: RunningFakeProvider) -> None:
    provider = OpenAIProvider(api_key="k", base_url=fake.openai_base_url)
    try:
        _, final = await collect(provider, request_for([user_message("hello")]))
    finally:
        await provider.aclose()
    assert fake.script.requests[0].body["stream_options"] == {"include_usage": True}
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0


def multi_step_conversation() -> list[Message]:
    calc: ToolCall = {"id": "call_1", "name": "calculate", "arguments": {"expression": "2+2"}}
    clock: ToolCall = {"id": "call_2", "name": "current_time", "arguments": {}}
    return [
        user_message("What is 2+2, and what time is it?"),
        assistant_message("Let me check.", [calc, clock]),
        tool_message(calc, "4"),
        tool_message(clock, "the clock is broken", is_error=True),
    ]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_multi_step_conversation_on_the_wire(
    provider: ModelProvider, fake: RunningFakeProvider, streaming: bool
) -> None:
    request = request_for(multi_step_conversation())
    response = await ask(provider, request, streaming=streaming)
    # The offline model answers tool results with a sentence quoting them.
    assert "calculate returned: 4" in response.message["content"]
    # Chat Completions has no error flag for tool results; the Messages API has one.
    verb = "returned" if wire_of(provider) == "openai" else "failed with"
    assert f"current_time {verb}: the clock is broken" in response.message["content"]
    assert response.stop_reason == "end_turn"

    [sent] = fake.script.requests
    if sent.wire == "openai":
        system, user, assistant, result1, result2 = sent.messages
        assert system == {"role": "system", "content": "Be brief."}
        assert user == {"role": "user", "content": "What is 2+2, and what time is it?"}
        assert assistant["role"] == "assistant"
        assert assistant["content"] == "Let me check."
        assert [
            (c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in assistant["tool_calls"]
        ] == [
            ("call_1", "function", "calculate", {"expression": "2+2"}),
            ("call_2", "function", "current_time", {}),
        ]
        assert result1 == {"role": "tool", "tool_call_id": "call_1", "content": "4"}
        assert result2 == {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": "the clock is broken",
        }
    else:
        assert sent.system == "Be brief."
        assert sent.messages == [
            {"role": "user", "content": "What is 2+2, and what time is it?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "calculate",
                        "input": {"expression": "2+2"},
                    },
                    {"type": "tool_use", "id": "call_2", "name": "current_time", "input": {}},
                ],
            },
            # Consecutive tool results share one user message.
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "4"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": "the clock is broken",
                        "is_error": True,
                    },
                ],
            },
        ]


async def test_a_full_tool_loop_with_the_offline_model(provider: ModelProvider) -> None:
    """What an agent turn does: the model calls a tool, gets its result, answers."""
    messages = [user_message("Please calculate 6*7?")]
    first = await provider.complete(request_for(messages))
    [call] = first.message.get("tool_calls", [])
    assert (call["name"], call["arguments"]) == ("calculate", {"expression": "6*7"})
    messages += [first.message, tool_message(call, "42")]
    _, second = await collect(provider, request_for(messages))
    assert second.message["content"] == "Here is the result. calculate returned: 42"
    assert "tool_calls" not in second.message


async def test_assistant_text_after_tool_results_joins_the_results_message(
    fake: RunningFakeProvider,
) -> None:
    provider = AnthropicProvider(api_key="k", base_url=fake.anthropic_base_url)
    conversation = [*multi_step_conversation(), user_message("Thanks, and now?")]
    try:
        await provider.complete(request_for(conversation))
    finally:
        await provider.aclose()
    last = fake.script.requests[0].messages[-1]
    assert last["role"] == "user"
    assert [block["type"] for block in last["content"]] == ["tool_result", "tool_result", "text"]


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, RateLimitedError),
        (401, DependencyAuthError),
        (403, DependencyAuthError),
        (404, DependencyNotFoundError),
        (400, UpstreamBadRequestError),
        (500, UpstreamServerError),
        (503, OverloadedError),
        (529, OverloadedError),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_error_statuses_are_translated_without_sdk_retries(
    provider: ModelProvider,
    fake: RunningFakeProvider,
    status: int,
    expected: type[DependencyError],
    streaming: bool,
) -> None:
    fake.script.push(FakeReply(status=status, retry_after=7, error_message="scripted failure"))
    with pytest.raises(expected) as caught:
        await ask(provider, request_for([user_message("hi")]), streaming=streaming)
    error = caught.value
    assert type(error) is expected
    assert error.dependency == f"llm:{provider.name}"
    assert "scripted failure" in error.detail
    assert str(status) in error.detail
    if isinstance(error, RateLimitedError):
        assert error.retry_after == 7.0
    # The SDK did not retry: the fake saw exactly one request.
    assert len(fake.script.requests) == 1


async def test_retry_after_fractions_are_kept(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(status=429, retry_after=0.5))
    with pytest.raises(RateLimitedError) as caught:
        await provider.complete(request_for([user_message("hi")]))
    assert caught.value.retry_after == 0.5
    assert caught.value.retryable


async def test_a_latency_beyond_the_timeout_is_a_timeout_error(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(text="too late", latency_seconds=5))
    with pytest.raises(DependencyTimeoutError):
        await provider.complete(request_for([user_message("hi")], timeout_seconds=0.2))
    assert len(fake.script.requests) == 1


async def test_a_slow_stream_times_out_between_chunks(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(text="one two three four", chunk_delay_seconds=5))
    with pytest.raises(DependencyTimeoutError):
        await collect(provider, request_for([user_message("hi")], timeout_seconds=0.3))


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
async def test_an_unreachable_server_is_a_connection_error(wire: str, streaming: bool) -> None:
    provider = provider_at(wire, f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(DependencyConnectionError) as caught:
            await ask(provider, request_for([user_message("hi")]), streaming=streaming)
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert caught.value.dependency == f"llm:{wire}"


async def test_a_stream_dropped_midway_raises_after_the_first_chunks(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(text="one two three four five six", drop_after_chunks=3))
    received: list[str] = []

    async def read_stream() -> None:
        async for item in provider.stream(request_for([user_message("hi")])):
            assert isinstance(item, TextDelta), "no final response after a dropped stream"
            received.append(item.text)

    with pytest.raises(DependencyConnectionError):
        await read_stream()
    assert received == ["one", " two", " three"]
    assert len(fake.script.requests) == 1


async def test_a_stream_dropped_before_it_finishes_is_an_error(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    # More chunks allowed than there are: the stream is cut just before its end.
    fake.script.push(
        FakeReply(tool_calls=[FakeToolCall("calculate", {"expression": "1"})], drop_after_chunks=99)
    )
    with pytest.raises(DependencyConnectionError):
        await collect(provider, request_for([user_message("hi")]))


async def test_a_response_dropped_midway_is_a_connection_error(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(text="cut short", drop_after_chunks=0))
    with pytest.raises(DependencyConnectionError):
        await provider.complete(request_for([user_message("hi")]))
    assert len(fake.script.requests) == 1


async def test_exhausted_quota_is_not_a_rate_limit(fake: RunningFakeProvider) -> None:
    provider = AnthropicProvider(api_key="k", base_url=fake.anthropic_base_url)
    fake.script.push(FakeReply(status=402))
    try:
        with pytest.raises(QuotaExceededError) as caught:
            await provider.complete(request_for([user_message("hi")]))
    finally:
        await provider.aclose()
    assert not caught.value.retryable


async def test_a_tool_call_left_without_result_is_rejected_like_the_real_apis(
    provider: ModelProvider,
) -> None:
    calc: ToolCall = {"id": "call_9", "name": "calculate", "arguments": {"expression": "1"}}
    with pytest.raises(UpstreamBadRequestError) as caught:
        await provider.complete(
            request_for([user_message("hi"), assistant_message("", [calc]), user_message("?")])
        )
    assert "call_9" in caught.value.detail


async def test_aclose_closes_the_http_client(fake: RunningFakeProvider) -> None:
    provider = OpenAIProvider(api_key="k", base_url=fake.openai_base_url)
    await provider.complete(request_for([user_message("hi")]))
    await provider.aclose()
    assert provider._client._client.is_closed


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, {"openai": RateLimitedError, "anthropic": RateLimitedError}),
        (529, {"openai": UpstreamServerError, "anthropic": OverloadedError}),
        (500, {"openai": UpstreamServerError, "anthropic": UpstreamServerError}),
    ],
)
async def test_an_error_event_inside_a_started_stream_is_translated(
    provider: ModelProvider,
    fake: RunningFakeProvider,
    status: int,
    expected: dict[str, type[DependencyError]],
) -> None:
    fake.script.push(
        FakeReply(
            text="one two three four",
            status=status,
            error_after_chunks=2,
            error_message="mid-stream",
        )
    )
    received: list[str] = []

    async def read_stream() -> None:
        async for item in provider.stream(request_for([user_message("hi")])):
            assert isinstance(item, TextDelta)
            received.append(item.text)

    with pytest.raises(DependencyError) as caught:
        await read_stream()
    assert type(caught.value) is expected[wire_of(provider)]
    assert "mid-stream" in caught.value.detail
    assert received == ["one", " two"]
    assert len(fake.script.requests) == 1


async def test_error_after_chunks_is_a_plain_error_status_without_streaming(
    provider: ModelProvider, fake: RunningFakeProvider
) -> None:
    fake.script.push(FakeReply(status=429, error_after_chunks=2, retry_after=1))
    with pytest.raises(RateLimitedError):
        await provider.complete(request_for([user_message("hi")]))


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "body", [b"<html>gateway</html>", b'{"choices": "none", "content": 7}'], ids=["html", "shape"]
)
async def test_an_answer_that_is_not_a_completion_is_an_upstream_error(
    wire: str, body: bytes
) -> None:
    """A 200 whose body is not the API's answer (a proxy's page, another shape) is the
    upstream's fault, said plainly, not a crash."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
        writer.write(head.encode() + b"\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    provider = provider_at(wire, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        with pytest.raises(UpstreamServerError, match="could not read"):
            await provider.complete(request_for([user_message("hi")]))
    finally:
        await provider.aclose()
        server.close()
