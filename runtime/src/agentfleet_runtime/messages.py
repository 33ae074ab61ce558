"""The conversation model agentfleet uses everywhere: in the agent graph's state, in the
model providers, in the API. Plain TypedDicts (JSON-shaped, checkpointer-friendly), never
LangChain message classes."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Role = Literal["user", "assistant", "tool"]


class ToolCall(TypedDict):
    """A tool the model asked to run."""

    id: str
    name: str
    arguments: dict[str, Any]


class Message(TypedDict):
    """One message of a session.

    * ``user``: ``content`` is what the user wrote.
    * ``assistant``: ``content`` is the model's text (may be empty when it only calls tools),
      ``tool_calls`` the tools it asked for.
    * ``tool``: the result of one tool call: ``tool_call_id`` and ``name`` say which,
      ``content`` is the result as text, ``is_error`` says whether the tool failed.
    """

    role: Role
    content: str
    tool_calls: NotRequired[list[ToolCall]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]
    is_error: NotRequired[bool]
    #: ``tool``: where the full result is stored when ``content`` is truncated (an
    #: artifact reference: id, kind, content type, size, url...).
    artifact: NotRequired[dict[str, Any]]


def user_message(content: str) -> Message:
    return {"role": "user", "content": content}


def assistant_message(content: str, tool_calls: list[ToolCall] | None = None) -> Message:
    message: Message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_message(call: ToolCall, content: str, *, is_error: bool = False) -> Message:
    return {
        "role": "tool",
        "content": content,
        "tool_call_id": call["id"],
        "name": call["name"],
        "is_error": is_error,
    }
