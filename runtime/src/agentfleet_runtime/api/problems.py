"""RFC 9457 problem details on every error response, with stable ``type`` URIs."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentfleet_runtime.errors import PROBLEM_BASE, AgentfleetError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Problem types for errors raised by the framework rather than by agentfleet code.
HTTP_PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    429: ("too-many-requests", "Too many requests"),
}


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. body.agent or query.limit")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(examples=[PROBLEM_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    model_config = {"extra": "allow"}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    request: Request,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _location(loc: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in loc)


async def _agentfleet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentfleetError)
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})
    retry_after = exc.extensions.get("retry_after")
    if retry_after is not None and "Retry-After" not in headers:
        headers["Retry-After"] = str(max(1, round(float(retry_after))))
    if exc.status >= 500:
        log.warning("request failed: %s", exc.detail, extra={"problem": exc.slug})
    return problem_response(
        exc.status, exc.slug, exc.title, exc.detail, request, headers, **exc.extensions
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _location(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem_response(
        422, "invalid-request", "Invalid request", detail, request, errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = HTTP_PROBLEMS.get(exc.status_code, ("http-error", "HTTP error"))
    return problem_response(
        exc.status_code, slug, title, str(exc.detail), request, dict(exc.headers or {})
    )


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        500, "internal", "Internal error", "an unexpected error occurred", request
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentfleetError, _agentfleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled_error)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


#: OpenAPI ``responses=`` entry for documented error statuses.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": HTTP_PROBLEMS.get(status, ("", "Error"))[1],
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }


_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the handlers above really send: every error
    response is a :class:`Problem` as ``application/problem+json`` (FastAPI files a
    ``model=`` under ``application/json``, and documents its own 422 body, which these
    handlers replace); an operation with a request body can answer 400 (a body that is not
    JSON at all), one with inputs 422, one taking an ``Idempotency-Key`` 409 (the key was
    used with other content)."""
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            if method not in _HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            has_input = "requestBody" in operation or bool(operation.get("parameters"))
            if "requestBody" in operation:
                responses.setdefault("400", {"description": HTTP_PROBLEMS[400][1]})
            if has_input:
                responses.setdefault("422", {"description": HTTP_PROBLEMS[422][1]})
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                responses.setdefault("409", {"description": "Idempotency key reused"})
            for status, response in responses.items():
                content = response.get("content", {})
                framework_422 = status == "422" and "HTTPValidationError" in str(content)
                if (
                    PROBLEM_MEDIA_TYPE in content
                    or framework_422
                    or (not content and _error(status))
                ):
                    if framework_422:
                        response["description"] = HTTP_PROBLEMS[422][1]
                    response["content"] = dict(_PROBLEM_CONTENT)
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if document.get("paths") and "Problem" not in schemas:
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        document.setdefault("components", {})["schemas"] = schemas
    return document


def _error(status: str) -> bool:
    return status[:1] in ("4", "5")
