"""Writing answers in the two wire formats: whole JSON bodies, Server-Sent Events streams
and error bodies, shaped exactly as OpenAI's Chat Completions API and Anthropic's Messages
API shape them (what the official SDKs parse)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentfleet_runtime.providers.fake.script import WireFormat

_WORDS = re.compile(r"\s*\S+|\s+")
_ARGUMENT_PIECE = 16


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def split_words(text: str) -> list[str]:
    """``text`` in word-sized pieces that join back to it exactly."""
    return _WORDS.findall(text)


def split_arguments(arguments_json: str) -> list[str]:
    return [
        arguments_json[i : i + _ARGUMENT_PIECE]
        for i in range(0, len(arguments_json), _ARGUMENT_PIECE)
    ] or [""]


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the fake model answers, independent of the wire format."""

    id: str
    model: str
    text: str
    calls: tuple[Call, ...]
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class EventStream:
    """An SSE body as a list of encoded events. ``content`` marks the events that carry
    model output (text or tool-argument pieces); events from ``finale`` on close the
    message (stop reason, usage, end marker)."""

    events: list[bytes]
    content: list[bool]
    finale: int


# -- OpenAI ------------------------------------------------------------------------------


def openai_completion(answer: Answer, created: int) -> bytes:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text if answer.text or not answer.calls else None,
        "refusal": None,
    }
    if answer.calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in answer.calls
        ]
    return dumps(
        {
            "id": answer.id,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if answer.calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": _openai_usage(answer),
        }
    )


def _openai_usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def openai_stream(answer: Answer, created: int, *, include_usage: bool) -> EventStream:
    head = (
        b'{"id":'
        + dumps(answer.id)
        + b',"object":"chat.completion.chunk","created":'
        + str(created).encode()
        + b',"model":'
        + dumps(answer.model)
        + b',"choices":[{"index":0,"delta":'
    )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            b"data: "
            + head
            + dumps(delta)
            + b',"finish_reason":'
            + dumps(finish)
            + b',"logprobs":null}]}\n\n'
        )

    events = [chunk({"role": "assistant", "content": ""})]
    content = [False]
    for word in split_words(answer.text):
        events.append(chunk({"content": word}))
        content.append(True)
    for index, call in enumerate(answer.calls):
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        content.append(False)
        for piece in split_arguments(call.arguments_json):
            events.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
            content.append(True)
    finale = len(events)
    events.append(chunk({}, "tool_calls" if answer.calls else "stop"))
    if include_usage:
        events.append(
            b"data: "
            + dumps(
                {
                    "id": answer.id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": answer.model,
                    "choices": [],
                    "usage": _openai_usage(answer),
                }
            )
            + b"\n\n"
        )
    events.append(b"data: [DONE]\n\n")
    content.extend([False] * (len(events) - finale))
    return EventStream(events, content, finale)


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "permission_denied", "You are not allowed to do this."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(status: int, message: str | None) -> bytes:
    kind, code, default = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    return dumps(
        {"error": {"message": message or default, "type": kind, "param": None, "code": code}}
    )


# -- Anthropic ---------------------------------------------------------------------------


def _anthropic_blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.text or not answer.calls:
        blocks.append({"type": "text", "text": answer.text})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in answer.calls
    )
    return blocks


def anthropic_message(answer: Answer) -> bytes:
    return dumps(
        {
            "id": answer.id,
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": _anthropic_blocks(answer),
            "stop_reason": "tool_use" if answer.calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        }
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def anthropic_stream(answer: Answer) -> EventStream:
    events = [
        _event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": answer.id,
                    "type": "message",
                    "role": "assistant",
                    "model": answer.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": answer.input_tokens, "output_tokens": 1},
                },
            },
        ),
        b'event: ping\ndata: {"type":"ping"}\n\n',
    ]
    content = [False, False]
    index = 0
    if answer.text or not answer.calls:
        events.append(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        content.append(False)
        for word in split_words(answer.text):
            events.append(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
            )
            content.append(True)
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        content.append(False)
        index = 1
    for call in answer.calls:
        events.append(
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": {},
                    },
                },
            )
        )
        content.append(False)
        for piece in split_arguments(call.arguments_json):
            events.append(
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
            content.append(True)
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        content.append(False)
        index += 1
    finale = len(events)
    events.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if answer.calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": answer.output_tokens},
            },
        )
    )
    events.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    content.extend([False, False])
    return EventStream(events, content, finale)


_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}


def anthropic_error(status: int, message: str | None, request_id: str) -> bytes:
    kind, default = _ANTHROPIC_ERRORS.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", "Error.")
    )
    return dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": request_id,
        }
    )


def error_body(wire: WireFormat, status: int, message: str | None, request_id: str) -> bytes:
    if wire == "openai":
        return openai_error(status, message)
    return anthropic_error(status, message, request_id)


def stream_error_event(wire: WireFormat, status: int, message: str | None) -> bytes:
    """The error a provider sends inside a stream that had started fine."""
    if wire == "openai":
        return b"data: " + openai_error(status, message) + b"\n\n"
    kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error."))
    return _event(
        "error", {"type": "error", "error": {"type": kind, "message": message or default}}
    )
