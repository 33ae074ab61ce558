"""What the model adapters share: the HTTP client they hand their SDK, and the
classification of transport failures and error statuses into
:mod:`agentfleet_runtime.errors`."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
from pydantic import BaseModel, ValidationError

from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    DeprecatedError,
    QuotaExceededError,
    UpstreamServerError,
    parse_retry_after,
    status_error,
)
from agentfleet_runtime.outbound_http import HttpPool

#: Connection-pool limits of each provider's HTTP client. Providers are shared per
#: (provider, base URL, key) by the ProviderPool, so these bound one upstream's fan-out.
DEFAULT_LIMITS = httpx2.Limits(
    max_connections=256,
    max_keepalive_connections=64,
    # Below the common 5 s idle timeout of servers (uvicorn's default), so that we do not
    # reuse a connection the server is closing at that very moment.
    keepalive_expiry=4.0,
)
#: Used only when a call does not pass its own timeout (every adapter call does).
DEFAULT_TIMEOUT = httpx2.Timeout(60.0, connect=5.0)


#: How servers say that the pinned model version cannot serve a request (HTTP 400/422):
#: deprecated or decommissioned, unknown, without tool support (Ollama, vLLM without a
#: tool parser), or refusing a parameter "with this model" (OpenAI).
_INCOMPATIBLE = re.compile(
    r"deprecat|decommission|no longer (?:available|supported)|unsupported model"
    r"|model_not_found|(?:model|version)\b.*\b(?:not found|does not exist|is not supported)"
    r"|(?:does not|doesn't) support (?:tools|tool[ _-]?call|function[ _-]?call)"
    r"|tool[ _-]?choice requires|not supported with this model",
    re.IGNORECASE,
)


def create_http_client(pool: HttpPool | None = None) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for an SDK's ``http_client=``."""
    pool = pool or HttpPool(DEFAULT_LIMITS)
    return pool.client(timeout=DEFAULT_TIMEOUT, follow_redirects=True)


def read_answer[M: BaseModel](content: bytes, shape: type[M], *, dependency: str) -> M:
    """An answer's JSON body read into ``shape`` (the fields an adapter uses); a body that
    is not such an answer (a proxy's error page, another API) is the upstream's fault."""
    try:
        return shape.model_validate_json(content)
    except ValidationError as exc:
        raise UpstreamServerError(
            f"{dependency} sent a response we could not read: {exc.error_count()} errors, "
            f"first: {exc.errors()[0]['msg']}",
            dependency=dependency,
        ) from exc


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After``."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def transport_error(exc: httpx2.RequestError, *, dependency: str) -> DependencyError:
    """A failure below HTTP (raised while a stream is read, where an SDK may not wrap it)."""
    if isinstance(exc, httpx2.TimeoutException):
        return DependencyTimeoutError(f"{dependency} timed out: {exc!r}", dependency=dependency)
    return DependencyConnectionError(
        f"{dependency} connection failed: {exc!r}", dependency=dependency
    )


def http_status_error(
    status: int,
    message: str,
    *,
    dependency: str,
    headers: httpx2.Headers | None = None,
    quota_exhausted: bool = False,
) -> DependencyError:
    """The error for an HTTP error status; ``quota_exhausted`` turns a 429 that retrying
    cannot fix (an exhausted balance) into a :class:`QuotaExceededError`."""
    detail = f"{dependency} answered HTTP {status}: {message}"
    if quota_exhausted:
        return QuotaExceededError(detail, dependency=dependency)
    if status in (400, 422) and _INCOMPATIBLE.search(message):
        # The pinned model version cannot serve this request: the next model may.
        return DeprecatedError(detail, dependency=dependency, incompatible=True)
    after = retry_after(headers) if headers is not None else None
    return status_error(status, detail, dependency=dependency, retry_after=after)


def error_message(body: object, fallback: str) -> str:
    """``error.message`` of a provider's error body, else ``fallback``."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return fallback


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool-call arguments from the model's JSON text. Text that is not a JSON object is
    kept under ``_raw_arguments`` so the tool layer can reject it visibly to the model."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw_arguments": raw}
    return value if isinstance(value, dict) else {"_raw_arguments": raw}
