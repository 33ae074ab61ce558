"""The offline model: the deterministic answers of ``agentfleet dev`` without an API key."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet_runtime.messages import (
    Message,
    ToolCall,
    assistant_message,
    tool_message,
    user_message,
)
from agentfleet_runtime.providers.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    TextDelta,
    ToolSpec,
)
from agentfleet_runtime.providers.fake import FakeToolCall, offline_answer


def tool(
    name: str, properties: dict[str, Any] | None = None, required: list[str] | None = None
) -> ToolSpec:
    schema: dict[str, Any] = {"type": "object", "properties": properties or {}}
    if required is not None:
        schema["required"] = required
    return ToolSpec(name=name, description=f"The {name} tool.", input_schema=schema)


CALCULATE = tool("calculate", {"expression": {"type": "string"}}, ["expression"])
CURRENT_TIME = tool("current_time", {"timezone": {"type": "string"}})
ECHO = tool("echo", {"text": {"type": "string"}}, ["text"])
TOOLS = [CALCULATE, CURRENT_TIME, ECHO]


def call_for(text: str, tools: list[ToolSpec] = TOOLS) -> FakeToolCall:
    answer = offline_answer([user_message(text)], tools)
    assert answer.text == ""
    [call] = answer.tool_calls
    return call


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("calculate 2+2", "2+2"),
        ("Please calculate 2 + 3 * 4?", "2 + 3 * 4"),
        ("Can you calculate (1+2)*3 for me?", "(1+2)*3"),
        ("CALCULATE: the 10/4.", "10/4"),
        ("what's calculate of sqrt(16) please", "sqrt(16)"),
    ],
)
def test_a_named_tool_is_called_with_the_rest_of_the_message(text: str, expression: str) -> None:
    call = call_for(text)
    assert (call.name, dict(call.arguments)) == ("calculate", {"expression": expression})


@pytest.mark.parametrize(
    "text", ["What is the current time?", "current_time please", "Current-time"]
)
def test_a_tool_without_required_parameters_gets_empty_arguments(text: str) -> None:
    call = call_for(text)
    assert (call.name, dict(call.arguments)) == ("current_time", {})


def test_a_lone_optional_text_parameter_takes_the_phrase() -> None:
    call = call_for("current time in Europe/Paris")
    assert (call.name, dict(call.arguments)) == ("current_time", {"timezone": "Europe/Paris"})


def test_explicit_json_after_the_name_wins() -> None:
    call = call_for('calculate {"expression": "2+2", "precision": 3} now')
    assert dict(call.arguments) == {"expression": "2+2", "precision": 3}


def test_the_tool_named_first_is_called() -> None:
    assert call_for("echo the current time").name == "echo"
    assert dict(call_for("echo the current time").arguments) == {"text": "current time"}
    assert call_for("current time, then calculate 1+1").name == "current_time"


def test_a_name_inside_another_word_does_not_count() -> None:
    answer = offline_answer([user_message("recalculated echoes")], TOOLS)
    assert not answer.tool_calls


def test_parameters_are_converted_to_their_schema_type() -> None:
    repeat = tool(
        "repeat",
        {
            "count": {"type": "integer"},
            "loud": {"type": "boolean", "default": True},
            "mode": {"enum": ["fast", "slow"]},
        },
        ["count", "loud", "mode"],
    )
    call = call_for("repeat 3 times", [repeat])
    assert dict(call.arguments) == {"count": 3, "loud": True, "mode": "fast"}
    weigh = tool("weigh", {"grams": {"type": ["number", "null"]}}, ["grams"])
    assert dict(call_for("weigh 12.5 g", [weigh]).arguments) == {"grams": 12.5}


def test_without_a_named_tool_it_introduces_itself() -> None:
    answer = offline_answer([user_message("Hello there!")], TOOLS)
    assert not answer.tool_calls
    assert "agentfleet's offline model" in answer.text
    assert "Hello there!" in answer.text
    assert "calculate, current_time, echo" in answer.text
    bare = offline_answer([user_message("Hello")], [])
    assert "No tools are available" in bare.text


def test_tool_results_are_answered_with_their_text() -> None:
    calc: ToolCall = {"id": "c1", "name": "calculate", "arguments": {"expression": "2+2"}}
    messages: list[Message] = [
        user_message("calculate 2+2"),
        assistant_message("", [calc]),
        tool_message(calc, "4"),
    ]
    answer = offline_answer(messages, TOOLS)
    assert answer.tool_calls == ()
    assert answer.text == "Here is the result. calculate returned: 4"


def test_it_is_deterministic() -> None:
    conversation = [user_message("calculate 1+1")]
    assert offline_answer(conversation, TOOLS) == offline_answer(conversation, TOOLS)


async def test_tool_call_ids_are_deterministic_over_http(provider: ModelProvider) -> None:
    request = ModelRequest(
        model="offline", system="", messages=[user_message("calculate 1+1")], tools=TOOLS
    )
    first = await provider.complete(request)
    second = await provider.complete(request)
    assert first.message == second.message
    [call] = first.message.get("tool_calls", [])
    assert call["arguments"] == {"expression": "1+1"}


async def test_offline_model_streams_its_introduction(provider: ModelProvider) -> None:
    request = ModelRequest(model="offline", system="", messages=[user_message("hi")], tools=TOOLS)
    *deltas, final = [item async for item in provider.stream(request)]
    assert len(deltas) > 5  # token streaming is observable
    assert isinstance(final, ModelResponse)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == final.message["content"]
    assert final.message["content"].startswith("I am agentfleet's offline model")
