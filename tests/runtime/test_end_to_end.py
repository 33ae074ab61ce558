"""The whole path over real HTTP: API → LangGraph agent → OpenAI SDK → fake provider,
tool calls → MCP client → demo MCP server over streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agentfleet_runtime.providers.fake.script import FakeReply, FakeToolCall

from .conftest import Runtime


async def test_a_turn_runs_a_real_mcp_tool_and_answers_with_its_result(runtime: Runtime) -> None:
    agent = await runtime.create_agent()
    assert "calculate" in agent["tools"]
    session = await runtime.create_session()
    runtime.fake.script.push_tool_call("calculate", {"expression": "6*7+0.5"})

    response = await runtime.client.post(
        f"/api/v1/sessions/{session}/messages", json={"content": "What is 6*7+0.5?"}
    )

    assert response.status_code == 200, response.text
    turn = response.json()
    assert [c["name"] for c in turn["tool_calls"]] == ["calculate"]
    assert turn["tool_calls"][0]["result"] == "42.5"  # computed by the MCP server
    assert turn["tool_calls"][0]["is_error"] is False
    assert "42.5" in turn["answer"]["content"]  # the offline model answers from the result
    assert turn["steps"] == 2
    assert turn["usage"]["input_tokens"] > 0
    # The model really received the tool's result on its second call, via the OpenAI wire.
    second = runtime.fake.script.last_request
    tool_messages = [m for m in second.messages if m["role"] == "tool"]
    assert tool_messages[-1]["content"] == "42.5"
    assert "calculate" in second.tool_names

    history = (await runtime.client.get(f"/api/v1/sessions/{session}/messages")).json()
    assert [m["role"] for m in history["items"]] == ["user", "assistant", "tool", "assistant"]


async def test_the_session_remembers_earlier_turns(runtime: Runtime) -> None:
    await runtime.create_agent()
    session = await runtime.create_session()
    for text in ("first message", "second message"):
        response = await runtime.client.post(
            f"/api/v1/sessions/{session}/messages", json={"content": text}
        )
        assert response.status_code == 200
    sent = runtime.fake.script.last_request.messages
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "first message",
        "second message",
    ]
    record = (await runtime.client.get(f"/api/v1/sessions/{session}")).json()
    assert record["turns"] == 2
    assert record["status"] == "idle"


def _parse_sse(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append(
            {
                "event": fields.get("event"),
                "id": fields.get("id"),
                "data": json.loads(fields["data"]),
            }
        )
    return events


async def test_streamed_turn_events_arrive_in_order(runtime: Runtime) -> None:
    await runtime.create_agent()
    session = await runtime.create_session()
    runtime.fake.script.push(
        FakeReply(tool_calls=[FakeToolCall("calculate", {"expression": "2**10"})]),
        FakeReply(text="Two to the tenth is 1024, as the tool said."),
    )

    async with runtime.client.stream(
        "POST", f"/api/v1/sessions/{session}/messages/stream", json={"content": "2^10?"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join([chunk async for chunk in response.aiter_text()])

    events = _parse_sse(body)
    types = [e["event"] for e in events]
    assert types[0] == "turn.started"
    assert types[-1] == "turn.completed"
    first_tool = types.index("tool.call")
    assert types.index("model.message") < first_tool < types.index("tool.result")
    deltas = [e["data"]["data"]["text"] for e in events if e["event"] == "model.delta"]
    assert len(deltas) > 1  # tokens streamed in pieces
    assert "".join(deltas) == "Two to the tenth is 1024, as the tool said."
    result = next(e for e in events if e["event"] == "tool.result")["data"]["data"]
    assert result["content"] == "1024"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert runtime.fake.script.requests[0].stream is True

    # The same events are kept by the session for clients that reconnect.
    replay = await runtime.client.get(f"/api/v1/sessions/{session}/events?after={ids[2]}")
    assert [e["id"] for e in replay.json()["items"]] == ids[3:]


async def test_websocket_sends_a_message_and_receives_the_turn(runtime: Runtime) -> None:
    await runtime.create_agent()
    session = await runtime.create_session()
    runtime.fake.script.push_tool_call("calculate", {"expression": "sqrt(81)"})
    url = f"{runtime.url.replace('http', 'ws')}/api/v1/sessions/{session}/ws"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(json.dumps({"type": "message", "content": "square root of 81"}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "ack"
        seen: list[str] = []
        while True:
            frame = json.loads(await ws.recv())
            event = frame["event"]
            assert event["turn_id"] == ack["turn_id"]
            seen.append(event["type"])
            if event["type"] == "turn.completed":
                assert "9" in event["data"]["answer"]["content"]
                break
    assert seen[0] == "turn.started"
    assert "tool.result" in seen


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "slug"),
    [
        ("GET", "/api/v1/agents/nope", None, 404, "not-found"),
        ("GET", "/api/v1/sessions/nope", None, 404, "not-found"),
        ("POST", "/api/v1/sessions", {"agent": "nope"}, 404, "not-found"),
        ("POST", "/api/v1/sessions", {"agentt": "x"}, 422, "invalid-request"),
        ("POST", "/api/v1/agents", {"name": "Bad_Name", "spec": {}}, 422, "invalid-request"),
        ("DELETE", "/api/v1/agents", None, 405, "method-not-allowed"),
        ("GET", "/api/v1/nothing-here", None, 404, "not-found"),
    ],
)
async def test_errors_are_problem_details(
    runtime: Runtime, method: str, path: str, body: Any, status: int, slug: str
) -> None:
    response = await runtime.client.request(method, path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"https://agentfleet.dev/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["instance"] == path


async def test_invalid_agent_spec_names_the_field(runtime: Runtime) -> None:
    response = await runtime.client.post(
        "/api/v1/agents",
        json={"name": "x", "spec": {"model": {"provider": "gemini", "name": "m"}}},
    )
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert "body.spec.model.provider" in fields


async def test_unknown_mcp_server_reference_is_rejected(runtime: Runtime) -> None:
    response = await runtime.client.post(
        "/api/v1/agents",
        json={
            "name": "x",
            "spec": {
                "model": {"provider": "fake", "name": "m"},
                "tools": [{"mcpServerRef": {"name": "missing"}}],
            },
        },
    )
    assert response.status_code == 422
    assert "spec.tools[0].mcpServerRef.name" in response.json()["detail"]


async def test_model_failure_is_a_problem_and_the_session_survives(runtime: Runtime) -> None:
    await runtime.create_agent()
    session = await runtime.create_session()
    runtime.fake.script.push_error(401, message="bad key")
    response = await runtime.client.post(
        f"/api/v1/sessions/{session}/messages", json={"content": "hello"}
    )
    assert response.status_code == 502
    assert response.json()["type"].endswith("/dependency-auth")
    assert len(runtime.fake.script.requests) == 1  # auth errors are never retried
    ok = await runtime.client.post(f"/api/v1/sessions/{session}/messages", json={"content": "hi"})
    assert ok.status_code == 200


async def test_step_limit_ends_a_looping_turn(runtime: Runtime) -> None:
    await runtime.create_agent(maxSteps=2)
    session = await runtime.create_session()
    for _ in range(3):
        runtime.fake.script.push_tool_call("calculate", {"expression": "1+1"})
    response = await runtime.client.post(
        f"/api/v1/sessions/{session}/messages", json={"content": "loop"}
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/step-limit-exceeded")
    assert len(runtime.fake.script.requests) == 2


def _sample(metrics: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_health_and_metrics(runtime: Runtime) -> None:
    assert (await runtime.client.get("/healthz/live")).json() == {"status": "ok"}
    assert (await runtime.client.get("/healthz/ready")).status_code == 503  # no agent yet
    await runtime.create_agent()
    assert (await runtime.client.get("/healthz/ready")).status_code == 200
    session = await runtime.create_session()
    series = 'agentfleet_turns_total{agent="calc",outcome="completed"}'
    before = _sample((await runtime.client.get("/metrics")).text, series)
    await runtime.client.post(f"/api/v1/sessions/{session}/messages", json={"content": "hi"})
    metrics = (await runtime.client.get("/metrics")).text
    assert _sample(metrics, series) == before + 1
    assert 'agentfleet_model_call_duration_seconds_count{model="fake-model"' in metrics
    requests = (
        'agentfleet_http_requests_total{method="POST",'
        'route="/api/v1/sessions/{session_id}/messages",status="200"}'
    )
    # Counted once the response is sent, so a scrape right after may race it.
    for _ in range(50):
        if _sample((await runtime.client.get("/metrics")).text, requests) >= 1:
            break
        await asyncio.sleep(0.02)
    assert _sample((await runtime.client.get("/metrics")).text, requests) >= 1
    openapi = (await runtime.client.get("/openapi.json")).json()
    assert "/api/v1/sessions/{session_id}/messages" in openapi["paths"]
