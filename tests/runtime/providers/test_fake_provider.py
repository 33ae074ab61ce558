"""The fake provider on the wire: what the official SDKs (and a plain HTTP client) see."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from agentfleet_runtime.providers.fake import (
    FakeReply,
    FakeScript,
    FakeToolCall,
    create_fake_provider_app,
)
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider
from agentfleet_runtime.testing.servers import running_server

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {**CHAT, "max_tokens": 100}


def sse_data(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]


async def test_urls_of_the_test_helper() -> None:
    async with (
        running_fake_provider() as plain,
        running_fake_provider(prefix="fake-llm/") as mounted,
    ):
        assert plain.openai_base_url == plain.url + "/v1"
        assert plain.anthropic_base_url == plain.url
        assert mounted.url.endswith("/fake-llm")
        async with httpx2.AsyncClient() as client:
            for fake in (plain, mounted):
                response = await client.get(fake.openai_base_url + "/models")
                assert response.status_code == 200
                assert [m["id"] for m in response.json()["data"]] == ["fake-model", "offline"]


async def test_mounted_in_a_host_app_as_agentfleet_dev_does() -> None:
    script = FakeScript([FakeReply(text="mounted fine")])
    host = Starlette(routes=[Mount("/fake-llm", app=create_fake_provider_app(script))])
    async with running_server(host, lifespan="off") as server:
        client = openai.AsyncOpenAI(
            api_key="k", base_url=server.url + "/fake-llm/v1", max_retries=0
        )
        try:
            completion = await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        finally:
            await client.close()
        async with httpx2.AsyncClient() as http:
            assert (
                await http.post(server.url + "/v1/chat/completions", json=CHAT)
            ).status_code == 404
    assert completion.choices[0].message.content == "mounted fine"
    assert script.requests[0].model == "fake-model"


async def test_models_in_both_shapes(fake: RunningFakeProvider) -> None:
    oai = openai.AsyncOpenAI(api_key="k", base_url=fake.openai_base_url, max_retries=0)
    ant = anthropic.AsyncAnthropic(api_key="k", base_url=fake.anthropic_base_url, max_retries=0)
    try:
        openai_models = [m.id async for m in oai.models.list()]
        anthropic_models = [m.id async for m in ant.models.list()]
    finally:
        await oai.close()
        await ant.close()
    assert openai_models == anthropic_models == ["fake-model", "offline"]


async def test_openai_stream_chunks(fake: RunningFakeProvider) -> None:
    fake.script.push(
        FakeReply(
            text="a b",
            tool_calls=[FakeToolCall("f", {"x": "y" * 20})],
            input_tokens=3,
            output_tokens=4,
        )
    )
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx2.AsyncClient() as client:
        response = await client.post(fake.openai_base_url + "/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    *chunks, done = sse_data(response.text)
    assert done == "[DONE]"
    parsed = [json.loads(c) for c in chunks]
    assert {c["object"] for c in parsed} == {"chat.completion.chunk"}
    deltas = [c["choices"][0]["delta"] for c in parsed if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas if d.get("content")] == ["a", " b"]
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert tool_deltas[0]["id"] == "call_fake_1_0"
    assert tool_deltas[0]["function"] == {"name": "f", "arguments": ""}
    assert len(tool_deltas) > 2  # the arguments arrive in pieces
    assert json.loads("".join(t["function"]["arguments"] for t in tool_deltas)) == {"x": "y" * 20}
    assert parsed[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


async def test_openai_stream_without_usage_option_has_no_usage_chunk(
    fake: RunningFakeProvider,
) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            fake.openai_base_url + "/chat/completions", json={**CHAT, "stream": True}
        )
    *chunks, done = sse_data(response.text)
    assert done == "[DONE]"
    assert all(json.loads(c)["choices"] for c in chunks)
    assert json.loads(chunks[-1])["choices"][0]["finish_reason"] == "stop"


async def test_anthropic_stream_events(fake: RunningFakeProvider) -> None:
    fake.script.push(
        FakeReply(text="a b", tool_calls=[FakeToolCall("f", {"x": 1})], output_tokens=9)
    )
    client = anthropic.AsyncAnthropic(api_key="k", base_url=fake.anthropic_base_url, max_retries=0)
    try:
        stream = await client.messages.create(**MESSAGES, stream=True)  # type: ignore[call-overload]
        events = [event async for event in stream]
    finally:
        await client.close()
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[5].content_block.type == "tool_use"
    assert events[6].delta.type == "input_json_delta"
    assert events[8].delta.stop_reason == "tool_use"
    assert events[8].usage.output_tokens == 9


async def test_anthropic_message_with_tool_use_blocks(fake: RunningFakeProvider) -> None:
    fake.script.push(FakeReply(tool_calls=[FakeToolCall("f", {"x": 1}, id="toolu_custom")]))
    client = anthropic.AsyncAnthropic(api_key="k", base_url=fake.anthropic_base_url, max_retries=0)
    try:
        message = await client.messages.create(**MESSAGES)  # type: ignore[call-overload]
    finally:
        await client.close()
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert (block.type, block.id, block.name, block.input) == (
        "tool_use",
        "toolu_custom",
        "f",
        {"x": 1},
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "rate_limit_error"),
        (529, "overloaded_error"),
        (401, "authentication_error"),
        (500, "api_error"),
    ],
)
async def test_anthropic_error_bodies(fake: RunningFakeProvider, status: int, kind: str) -> None:
    fake.script.push(FakeReply(status=status, retry_after=3, error_message="nope"))
    async with httpx2.AsyncClient() as client:
        response = await client.post(fake.anthropic_base_url + "/v1/messages", json=MESSAGES)
    assert response.status_code == status
    assert response.headers["retry-after"] == "3"
    assert response.headers["request-id"].startswith("req_")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": kind, "message": "nope"}


async def test_openai_error_bodies(fake: RunningFakeProvider) -> None:
    fake.script.push(FakeReply(status=429, retry_after=2.5))
    async with httpx2.AsyncClient() as client:
        response = await client.post(fake.openai_base_url + "/chat/completions", json=CHAT)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2.5"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"]
    assert set(error) == {"message", "type", "param", "code"}


async def test_malformed_requests_get_400_in_the_providers_shape(fake: RunningFakeProvider) -> None:
    async with httpx2.AsyncClient() as client:
        no_max_tokens = await client.post(fake.anthropic_base_url + "/v1/messages", json=CHAT)
        not_json = await client.post(fake.openai_base_url + "/chat/completions", content=b"{")
        no_messages = await client.post(
            fake.openai_base_url + "/chat/completions", json={"model": "m"}
        )
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in no_max_tokens.json()["error"]["message"]
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert no_messages.status_code == 400
    # Malformed requests do not use up scripted replies.
    assert not fake.script.replies


async def test_replies_are_used_in_order_then_the_fallback(fake: RunningFakeProvider) -> None:
    fake.script.push(FakeReply(text="first"), FakeReply(text="second"))
    fake.script.fallback = FakeReply(text="always")
    client = openai.AsyncOpenAI(api_key="k", base_url=fake.openai_base_url, max_retries=0)
    try:
        texts = [
            (await client.chat.completions.create(**CHAT)).choices[0].message.content  # type: ignore[call-overload]
            for _ in range(4)
        ]
    finally:
        await client.close()
    assert texts == ["first", "second", "always", "always"]
    assert len(fake.script.requests) == 4
    assert fake.script.last_request.api_key == "k"


async def test_recording_is_bounded() -> None:
    script = FakeScript(max_recorded=2)
    async with running_fake_provider(script) as fake, httpx2.AsyncClient() as client:
        for index in range(3):
            body = {"model": f"m{index}", "messages": [{"role": "user", "content": "hi"}]}
            await client.post(fake.openai_base_url + "/chat/completions", json=body)
    assert [r.model for r in script.requests] == ["m1", "m2"]


async def test_a_client_that_gives_up_does_not_hold_the_server() -> None:
    loop = asyncio.get_running_loop()
    async with running_fake_provider() as fake:
        fake.script.push(FakeReply(text="late", latency_seconds=30))
        async with httpx2.AsyncClient() as client:
            with pytest.raises(httpx2.ReadTimeout):
                await client.post(
                    fake.openai_base_url + "/chat/completions", json=CHAT, timeout=0.2
                )
        await asyncio.sleep(0.05)
        stopping = loop.time()
    # The fake stopped waiting when the client went away: shutdown does not wait for it.
    assert loop.time() - stopping < 1.0
