"""The fake model provider as an ASGI app: OpenAI's ``POST /v1/chat/completions``,
Anthropic's ``POST /v1/messages`` and ``GET /v1/models``, streaming or not, over real HTTP.

Mount it anywhere (``agentfleet dev`` mounts it at ``/fake-llm``): the OpenAI base URL is
then ``<url>/fake-llm/v1`` and the Anthropic base URL ``<url>/fake-llm``.

It is kept lean (it serves benchmarks): no validation library, pre-encoded SSE events, and
no sleeping unless a reply asks for latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from agentfleet_runtime.providers.fake.offline import offline_answer
from agentfleet_runtime.providers.fake.render import (
    Answer,
    Call,
    EventStream,
    anthropic_message,
    anthropic_stream,
    dumps,
    error_body,
    openai_completion,
    openai_stream,
    split_words,
    stream_error_event,
)
from agentfleet_runtime.providers.fake.script import (
    FakeReply,
    FakeScript,
    RecordedRequest,
    WireFormat,
)
from agentfleet_runtime.providers.fake.wire import (
    ParsedRequest,
    WireError,
    parse_anthropic,
    parse_openai,
)

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


async def _pause(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds``; ``False`` (at once) if the client disconnects meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        waiter = asyncio.ensure_future(receive())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
        finally:
            if not waiter.done():
                waiter.cancel()
        if waiter in done and waiter.result()["type"] == "http.disconnect":
            return False
    return True


class _NoResponse(Response):
    """Sends nothing: the client is gone."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _RawResponse(Response):
    """A complete body, or the first half of it before the connection is dropped."""

    def __init__(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, drop: bool
    ) -> None:
        super().__init__()
        self._status, self._payload, self._header_list, self._drop = status, body, headers, drop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*self._header_list, (b"content-length", str(len(self._payload)).encode())]
        await send({"type": "http.response.start", "status": self._status, "headers": headers})
        if self._drop:
            # Returning without finishing makes the server close the connection.
            await send(
                {
                    "type": "http.response.body",
                    "body": self._payload[: len(self._payload) // 2],
                    "more_body": True,
                }
            )
            return
        await send({"type": "http.response.body", "body": self._payload})


class _EventStreamResponse(Response):
    """A Server-Sent Events stream, optionally slowed down or cut after some chunks."""

    def __init__(
        self,
        stream: EventStream,
        headers: list[tuple[bytes, bytes]],
        *,
        drop_after_chunks: int | None,
        chunk_delay: float,
        error_event: bytes | None = None,
    ) -> None:
        """At the drop point, ``error_event`` (if any) is sent and the stream ends cleanly;
        otherwise the connection is closed."""
        super().__init__()
        self._stream, self._header_list = stream, headers
        self._drop, self._delay = drop_after_chunks, chunk_delay
        self._error_event = error_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._header_list})
        stream, drop, delay = self._stream, self._drop, self._delay
        sent = 0
        for index, event in enumerate(stream.events):
            is_content = stream.content[index]
            if drop is not None and (index >= stream.finale or (is_content and sent >= drop)):
                if self._error_event is None:
                    return  # the server closes the connection mid-stream
                await send({"type": "http.response.body", "body": self._error_event})
                return
            if is_content:
                sent += 1
                if delay > 0 and not await _pause(delay, receive):
                    return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


#: The delivery options of an offline-model answer (no latency, no faults).
_OFFLINE = FakeReply()


def _estimate_tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


class _FakeProvider:
    def __init__(self, script: FakeScript) -> None:
        self.script = script
        self._sequence = itertools.count(1)

    async def chat_completions(self, request: Request) -> Response:
        return await self._handle(request, "openai")

    async def messages(self, request: Request) -> Response:
        return await self._handle(request, "anthropic")

    async def models(self, request: Request) -> Response:
        if "anthropic-version" in request.headers:
            data: list[dict[str, Any]] = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in self.script.models
            ]
            body: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "agentfleet"}
                    for m in self.script.models
                ],
            }
        return _RawResponse(200, dumps(body), _JSON_HEADERS, drop=False)

    async def _handle(self, request: Request, wire: WireFormat) -> Response:
        sequence = next(self._sequence)
        request_id = f"req_fake_{sequence}"
        id_header = b"x-request-id" if wire == "openai" else b"request-id"
        headers = [(id_header, request_id.encode())]
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(
                wire, 400, "The request body is not valid JSON.", request_id, headers
            )
        if not isinstance(body, dict):
            return self._error(
                wire, 400, "The request body must be a JSON object.", request_id, headers
            )
        self._record(request, wire, body)
        try:
            parsed = parse_openai(body) if wire == "openai" else parse_anthropic(body)
        except WireError as exc:
            return self._error(wire, 400, str(exc), request_id, headers)

        reply = self.script.next_reply()  # None: the offline model answers
        options = reply if reply is not None else _OFFLINE
        if options.latency_seconds > 0 and not await _pause(
            options.latency_seconds, request.receive
        ):
            return _NoResponse()
        error_in_stream = (
            options.is_error and parsed.stream and options.error_after_chunks is not None
        )
        if options.is_error and not error_in_stream:
            if options.retry_after is not None:
                headers.append((b"retry-after", _seconds(options.retry_after)))
            return self._error(wire, options.status, options.error_message, request_id, headers)

        answer = self._answer(wire, sequence, parsed, reply, len(body["messages"]))
        now = int(time.time())
        if not parsed.stream:
            payload = (
                openai_completion(answer, now) if wire == "openai" else anthropic_message(answer)
            )
            drop = options.drop_after_chunks is not None
            return _RawResponse(200, payload, [*_JSON_HEADERS, *headers], drop=drop)
        stream = (
            openai_stream(answer, now, include_usage=parsed.include_usage)
            if wire == "openai"
            else anthropic_stream(answer)
        )
        if error_in_stream:
            return _EventStreamResponse(
                stream,
                [*_SSE_HEADERS, *headers],
                drop_after_chunks=options.error_after_chunks,
                chunk_delay=options.chunk_delay_seconds,
                error_event=stream_error_event(wire, options.status, options.error_message),
            )
        return _EventStreamResponse(
            stream,
            [*_SSE_HEADERS, *headers],
            drop_after_chunks=options.drop_after_chunks,
            chunk_delay=options.chunk_delay_seconds,
        )

    def _record(self, request: Request, wire: WireFormat, body: dict[str, Any]) -> None:
        raw_headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]
        }
        api_key = raw_headers.get("x-api-key")
        authorization = raw_headers.get("authorization", "")
        if api_key is None and authorization.lower().startswith("bearer "):
            api_key = authorization[7:]
        messages, tools = body.get("messages"), body.get("tools")
        self.script.record(
            RecordedRequest(
                wire=wire,
                model=str(body.get("model", "")),
                messages=messages if isinstance(messages, list) else [],
                tools=tools if isinstance(tools, list) else [],
                stream=bool(body.get("stream")),
                system=body.get("system"),
                body=body,
                api_key=api_key,
                headers=raw_headers,
            )
        )

    def _answer(
        self,
        wire: WireFormat,
        sequence: int,
        parsed: ParsedRequest,
        reply: FakeReply | None,
        position: int,
    ) -> Answer:
        if reply is None:
            offline = offline_answer(parsed.messages, parsed.tools)
            text, tool_calls = offline.text, offline.tool_calls
        else:
            text, tool_calls = reply.text, tuple(reply.tool_calls)
        prefix = "call_fake" if wire == "openai" else "toolu_fake"
        calls = tuple(
            Call(call.id or f"{prefix}_{position}_{index}", call.name, dict(call.arguments))
            for index, call in enumerate(tool_calls)
        )
        input_tokens = reply.input_tokens if reply is not None else None
        output_tokens = reply.output_tokens if reply is not None else None
        if input_tokens is None:
            chars = len(parsed.system) + sum(len(m["content"]) for m in parsed.messages)
            input_tokens = _estimate_tokens(chars)
        if output_tokens is None:
            output_tokens = max(
                1,
                len(split_words(text))
                + sum(_estimate_tokens(len(c.arguments_json)) for c in calls),
            )
        return Answer(
            id=f"chatcmpl-fake-{sequence}" if wire == "openai" else f"msg_fake_{sequence}",
            model=parsed.model,
            text=text,
            calls=calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    @staticmethod
    def _error(
        wire: WireFormat,
        status: int,
        message: str | None,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
    ) -> Response:
        body = error_body(wire, status, message, request_id)
        return _RawResponse(status, body, [*_JSON_HEADERS, *headers], drop=False)


def _seconds(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else repr(float(value))).encode()


def create_fake_provider_app(script: FakeScript | None = None) -> Starlette:
    """The fake provider's ASGI app, answering from ``script`` (a new, empty one — i.e.
    the offline model — if not given). The script is also at ``app.state.script``."""
    fake = _FakeProvider(script if script is not None else FakeScript())
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", fake.chat_completions, methods=["POST"]),
            Route("/v1/messages", fake.messages, methods=["POST"]),
            Route("/v1/models", fake.models, methods=["GET"]),
        ]
    )
    app.state.script = fake.script
    return app
