"""Reading requests in the two wire formats the fake speaks (OpenAI Chat Completions and
Anthropic Messages) into agentfleet's own conversation model, with the checks the real
APIs make that an adapter most easily gets wrong (missing fields, tool calls left without
results). A request that fails them is a :class:`WireError`: the fake answers it with the
provider's 400 error body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentfleet_runtime.messages import Message, ToolCall
from agentfleet_runtime.providers.base import ToolSpec


class WireError(ValueError):
    """The request is malformed (the fake answers 400)."""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    model: str
    system: str
    messages: list[Message]
    tools: list[ToolSpec]
    stream: bool
    include_usage: bool


def _text_of(content: Any, where: str) -> str:
    """The text of a message ``content``: a string, ``None``, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict):
                raise WireError(f"{where}: content parts must be objects")
            if part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise WireError(f"{where}: a text part needs a string 'text'")
                texts.append(text)
        return "".join(texts)
    raise WireError(f"{where}: content must be a string or a list of parts")


def _require(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        raise WireError(f"{key}: Field required" if value is None else f"{key}: invalid type")
    return value


def _tool_spec(name: Any, description: Any, schema: Any, where: str) -> ToolSpec:
    if not isinstance(name, str) or not name:
        raise WireError(f"{where}: a tool needs a name")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise WireError(f"{where}: the input schema must be an object")
    return ToolSpec(name=name, description=str(description or ""), input_schema=schema)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw_arguments": raw}
    return value if isinstance(value, dict) else {"_raw_arguments": raw}


# -- OpenAI Chat Completions -------------------------------------------------------------


def parse_openai(body: dict[str, Any]) -> ParsedRequest:
    model = _require(body, "model", str)
    raw_messages = _require(body, "messages", list)
    if not raw_messages:
        raise WireError("messages: must contain at least one message")
    system: list[str] = []
    messages: list[Message] = []
    names_by_id: dict[str, str] = {}
    pending: set[str] = set()  # tool_call ids still awaiting a tool message
    for index, raw in enumerate(raw_messages):
        where = f"messages[{index}]"
        if not isinstance(raw, dict):
            raise WireError(f"{where}: must be an object")
        role = raw.get("role")
        if role != "tool" and pending:
            raise WireError(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(pending))}"
            )
        if role in ("system", "developer"):
            system.append(_text_of(raw.get("content"), where))
        elif role == "user":
            messages.append({"role": "user", "content": _text_of(raw.get("content"), where)})
        elif role == "assistant":
            message: Message = {
                "role": "assistant",
                "content": _text_of(raw.get("content"), where),
            }
            calls: list[ToolCall] = []
            for call in raw.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(call.get("id"), str):
                    raise WireError(f"{where}.tool_calls: each needs an 'id' and a 'function'")
                name = function.get("name")
                if not isinstance(name, str):
                    raise WireError(f"{where}.tool_calls: function.name is required")
                calls.append(
                    {
                        "id": call["id"],
                        "name": name,
                        "arguments": _arguments(function.get("arguments")),
                    }
                )
                names_by_id[call["id"]] = name
                pending.add(call["id"])
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        elif role == "tool":
            call_id = raw.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in pending:
                raise WireError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
            pending.discard(call_id)
            messages.append(
                {
                    "role": "tool",
                    "content": _text_of(raw.get("content"), where),
                    "tool_call_id": call_id,
                    "name": names_by_id[call_id],
                    "is_error": False,
                }
            )
        else:
            raise WireError(f"{where}.role: unknown role {role!r}")
    tools: list[ToolSpec] = []
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise WireError(f"tools[{index}]: expected {{'type': 'function', 'function': {{...}}}}")
        tools.append(
            _tool_spec(
                function.get("name"),
                function.get("description"),
                function.get("parameters"),
                f"tools[{index}]",
            )
        )
    options = body.get("stream_options")
    return ParsedRequest(
        model=model,
        system="\n".join(system),
        messages=messages,
        tools=tools,
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
    )


# -- Anthropic Messages ------------------------------------------------------------------


def parse_anthropic(body: dict[str, Any]) -> ParsedRequest:
    model = _require(body, "model", str)
    _require(body, "max_tokens", int)
    raw_messages = _require(body, "messages", list)
    if not raw_messages:
        raise WireError("messages: at least one message is required")
    messages: list[Message] = []
    names_by_id: dict[str, str] = {}
    expected: set[str] = set()  # tool_use ids the next message must answer
    for index, raw in enumerate(raw_messages):
        where = f"messages.{index}"
        if not isinstance(raw, dict):
            raise WireError(f"{where}: must be an object")
        role = raw.get("role")
        content = raw.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise WireError(f"{where}.content: must be a string or a list of content blocks")
        blocks: list[Any] = content
        if role == "user":
            answered: set[str] = set()
            texts: list[str] = []
            for block in blocks:
                if not isinstance(block, dict):
                    raise WireError(f"{where}.content: blocks must be objects")
                kind = block.get("type")
                if kind == "tool_result":
                    call_id = block.get("tool_use_id")
                    if not isinstance(call_id, str) or call_id not in expected:
                        raise WireError(
                            f"{where}.content: unexpected `tool_use_id` found in `tool_result` "
                            "blocks. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message."
                        )
                    answered.add(call_id)
                    messages.append(
                        {
                            "role": "tool",
                            "content": _text_of(block.get("content"), where),
                            "tool_call_id": call_id,
                            "name": names_by_id[call_id],
                            "is_error": bool(block.get("is_error", False)),
                        }
                    )
                elif kind == "text":
                    texts.append(_text_of([block], where))
            if expected - answered:
                raise WireError(
                    f"{where}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(expected - answered))}. Each "
                    "`tool_use` block must have a corresponding `tool_result` block in the "
                    "next message."
                )
            expected = set()
            if texts:
                messages.append({"role": "user", "content": "".join(texts)})
        elif role == "assistant":
            if expected:
                raise WireError(
                    f"{where}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(expected))}"
                )
            texts = []
            calls: list[ToolCall] = []
            for block in blocks:
                if not isinstance(block, dict):
                    raise WireError(f"{where}.content: blocks must be objects")
                kind = block.get("type")
                if kind == "text":
                    texts.append(_text_of([block], where))
                elif kind == "tool_use":
                    call_id, name, arguments = (
                        block.get("id"),
                        block.get("name"),
                        block.get("input"),
                    )
                    if not (
                        isinstance(call_id, str)
                        and isinstance(name, str)
                        and isinstance(arguments, dict)
                    ):
                        raise WireError(f"{where}.content: tool_use needs 'id', 'name', 'input'")
                    calls.append({"id": call_id, "name": name, "arguments": arguments})
                    names_by_id[call_id] = name
                    expected.add(call_id)
            message: Message = {"role": "assistant", "content": "".join(texts)}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        else:
            raise WireError(f"{where}.role: Input should be 'user' or 'assistant'")
    tools: list[ToolSpec] = []
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict):
            raise WireError(f"tools.{index}: must be an object")
        if "input_schema" not in tool:
            raise WireError(f"tools.{index}.input_schema: Field required")
        tools.append(
            _tool_spec(
                tool.get("name"), tool.get("description"), tool["input_schema"], f"tools.{index}"
            )
        )
    return ParsedRequest(
        model=model,
        system=_text_of(body.get("system"), "system"),
        messages=messages,
        tools=tools,
        stream=bool(body.get("stream")),
        include_usage=True,
    )
