"""Correlation ids: every request gets an ``X-Request-ID`` (the caller's, or a new one),
echoed in the response and bound to every log line written while serving it. The same
middleware counts HTTP requests by method, route template and status."""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentfleet_runtime.observability import metrics

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_template(scope: Scope) -> str:
    """The matched route as a template: the path with each path parameter's value put
    back as ``{name}`` (included routers do not expose their prefix on the route)."""
    if scope.get("route") is None:
        return "<unmatched>"
    segments = str(scope["path"]).split("/")
    for name, value in (scope.get("path_params") or {}).items():
        # The last matching segment: parameters follow the literal ones they could equal.
        for index in range(len(segments) - 1, -1, -1):
            if segments[index] == str(value):
                segments[index] = f"{{{name}}}"
                break
    return "/".join(segments)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(REQUEST_ID_HEADER.encode(), b"").decode()
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        status = 500  # unless the app answers: an exception that escapes is a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                # The route's template (``/api/v1/sessions/{session_id}``), never the raw
                # path: one series per route, whatever the ids. Unmatched paths share one.
                metrics.HTTP_REQUESTS.labels(
                    scope["method"], route_template(scope), str(status)
                ).inc()
