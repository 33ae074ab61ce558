"""The one exception hierarchy of the runtime.

Every error says, once, whether retrying can help, and what HTTP status and RFC 9457
problem ``type`` it maps to. Third-party exceptions (SDKs, drivers, MCP) are translated at
the adapter boundary with ``raise XError(...) from exc``; nothing else catches them.

::

    AgentfleetError                      500 internal
    ├── NotFoundError                    404 not-found
    ├── ConflictError                    409 conflict
    │   └── ReadOnlyError                409 read-only
    ├── InvalidRequestError              422 invalid-request
    ├── TurnError                        422 turn-failed      (the agent could not finish)
    │   └── StepLimitExceededError       422 step-limit-exceeded
    └── DependencyError                  502 dependency-failed (an external call failed)
        ├── RetryableDependencyError     ...                   retryable = True
        │   ├── RateLimitedError         503 rate-limited      (retry_after honoured)
        │   ├── DependencyTimeoutError   504 dependency-timeout
        │   ├── DependencyConnectionError 502 dependency-unreachable
        │   ├── OverloadedError          503 dependency-overloaded
        │   └── UpstreamServerError      502 dependency-server-error
        └── (non-retryable)
            ├── DependencyAuthError      502 dependency-auth    (never retried)
            ├── UpstreamBadRequestError  502 dependency-rejected-request
            ├── QuotaExceededError       502 dependency-quota-exceeded
            ├── DependencyNotFoundError  502 dependency-not-found
            ├── DeprecatedError          502 dependency-deprecated
            ├── IncompatibleDependencyError 502 dependency-incompatible (no common protocol)
            ├── ReloadFailedError        502 mcp-reload-failed  (a new connection failed its checks)
            ├── StreamInterruptedError   502 stream-interrupted  (a started stream: never retried)
            ├── ModelsUnavailableError   503 models-unavailable  (every model of the chain failed)
            └── CallRefusedError        503 ...                 (the resilience layer said no)
                ├── CircuitOpenError     503 circuit-open       (retry_after: until the probe)
                ├── BulkheadFullError    503 bulkhead-full
                ├── RateLimitExceededError 503 client-rate-limited (our own limiter's wait bound)
                └── BudgetExhaustedError 503 retry-budget-exhausted

Refusals are raised *instead of* calling the dependency: nothing was sent. They are not
retried (retrying a refusal amplifies the overload it protects against); the model
fallback chain treats them like an unavailable model.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://agentfleet.dev/problems/"


class AgentfleetError(Exception):
    """Base of every error the runtime raises on purpose."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False
    #: The resilience layer's name for this error (``ErrorClass`` in the ResiliencePolicy).
    error_class: ClassVar[str | None] = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @classmethod
    def problem_type(cls) -> str:
        return PROBLEM_BASE + cls.slug


class NotFoundError(AgentfleetError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(AgentfleetError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class ReadOnlyError(ConflictError):
    slug = "read-only"
    title = "Read-only resource"


class InvalidRequestError(AgentfleetError):
    status = 422
    slug = "invalid-request"
    title = "Invalid request"


class TurnError(AgentfleetError):
    status = 422
    slug = "turn-failed"
    title = "The agent could not complete the turn"


class StepLimitExceededError(TurnError):
    slug = "step-limit-exceeded"
    title = "Step limit exceeded"


class DependencyError(AgentfleetError):
    """An external call failed. ``dependency`` names it (``llm:openai``, ``mcp:demo``...)."""

    status = 502
    slug = "dependency-failed"
    title = "A dependency failed"

    def __init__(self, detail: str, *, dependency: str = "unknown", **extensions: Any) -> None:
        super().__init__(detail, dependency=dependency, **extensions)
        self.dependency = dependency


class RetryableDependencyError(DependencyError):
    retryable = True


class RateLimitedError(RetryableDependencyError):
    status = 503
    slug = "rate-limited"
    title = "A dependency is rate limiting us"
    error_class = "rateLimited"

    def __init__(
        self, detail: str, *, dependency: str = "unknown", retry_after: float | None = None
    ) -> None:
        super().__init__(detail, dependency=dependency, retry_after=retry_after)
        self.retry_after = retry_after


class DependencyTimeoutError(RetryableDependencyError):
    status = 504
    slug = "dependency-timeout"
    title = "A dependency timed out"
    error_class = "timeout"


class DependencyConnectionError(RetryableDependencyError):
    slug = "dependency-unreachable"
    title = "A dependency is unreachable"
    error_class = "connection"


class OverloadedError(RetryableDependencyError):
    status = 503
    slug = "dependency-overloaded"
    title = "A dependency is overloaded"
    error_class = "overloaded"


class UpstreamServerError(RetryableDependencyError):
    slug = "dependency-server-error"
    title = "A dependency returned a server error"
    error_class = "serverError"


class DependencyAuthError(DependencyError):
    slug = "dependency-auth"
    title = "A dependency rejected our credentials"


class UpstreamBadRequestError(DependencyError):
    slug = "dependency-rejected-request"
    title = "A dependency rejected the request"


class QuotaExceededError(DependencyError):
    slug = "dependency-quota-exceeded"
    title = "A dependency's quota is exhausted"


class DependencyNotFoundError(DependencyError):
    slug = "dependency-not-found"
    title = "A dependency does not know the requested resource"


class DeprecatedError(DependencyError):
    slug = "dependency-deprecated"
    title = "A dependency has been deprecated or removed"


class IncompatibleDependencyError(DependencyError):
    """The dependency speaks no protocol version this runtime does (e.g. an MCP server that
    negotiated a version the SDK does not support): retrying cannot help."""

    slug = "dependency-incompatible"
    title = "A dependency speaks no protocol version we support"


class ReloadFailedError(DependencyError):
    """A hot reload's new connection failed its health checks (connect, tool listing,
    protocol version, pinned tool schemas); the old connection keeps serving."""

    slug = "mcp-reload-failed"
    title = "The new MCP server connection failed its checks; the old one was kept"


class StreamInterruptedError(DependencyError):
    """A stream that had started (the caller saw part of it) broke. Never retried: a new
    attempt would repeat what the caller already saw."""

    slug = "stream-interrupted"
    title = "A dependency's stream broke after it had started"


class CallRefusedError(DependencyError):
    """The resilience layer refused to call the dependency (nothing was sent)."""

    status = 503
    slug = "dependency-refused"
    title = "The call to a dependency was refused"
    #: The ``reason`` label of ``agentfleet_resilience_rejections_total``.
    reason: ClassVar[str] = "refused"


class CircuitOpenError(CallRefusedError):
    slug = "circuit-open"
    title = "The dependency's circuit breaker is open"
    reason = "circuit_open"

    def __init__(
        self, detail: str, *, dependency: str = "unknown", retry_after: float | None = None
    ) -> None:
        super().__init__(detail, dependency=dependency, retry_after=retry_after)
        self.retry_after = retry_after


class BulkheadFullError(CallRefusedError):
    slug = "bulkhead-full"
    title = "Too many concurrent calls to the dependency"
    reason = "bulkhead_full"


class RateLimitExceededError(CallRefusedError):
    slug = "client-rate-limited"
    title = "The client-side rate limit of the dependency is exhausted"
    reason = "rate_limited"

    def __init__(
        self, detail: str, *, dependency: str = "unknown", retry_after: float | None = None
    ) -> None:
        super().__init__(detail, dependency=dependency, retry_after=retry_after)
        self.retry_after = retry_after


class BudgetExhaustedError(CallRefusedError):
    slug = "retry-budget-exhausted"
    title = "The dependency's retry budget is exhausted"
    reason = "budget_exhausted"


class ModelsUnavailableError(DependencyError):
    """No model of an agent's chain (the model and its ``fallbackModels``) could answer.
    ``failures`` says, per model, what failed; the agent turns it into a degraded answer."""

    status = 503
    slug = "models-unavailable"
    title = "No model could answer"

    def __init__(
        self,
        detail: str,
        *,
        dependency: str = "llm",
        failures: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail, dependency=dependency, failures=failures or [])
        self.failures: list[dict[str, str]] = failures or []


def status_error(
    status: int, detail: str, *, dependency: str, retry_after: float | None = None
) -> DependencyError:
    """The error for an HTTP status a dependency answered with (adapters use this so every
    HTTP-speaking dependency classifies statuses the same way)."""
    if status == 429:
        return RateLimitedError(detail, dependency=dependency, retry_after=retry_after)
    if status in (401, 403):
        return DependencyAuthError(detail, dependency=dependency)
    if status == 404:
        return DependencyNotFoundError(detail, dependency=dependency)
    if status == 410:
        return DeprecatedError(detail, dependency=dependency)
    if status in (408, 504):
        return DependencyTimeoutError(detail, dependency=dependency)
    if status in (503, 529):
        return OverloadedError(detail, dependency=dependency)
    if status >= 500:
        return UpstreamServerError(detail, dependency=dependency)
    return UpstreamBadRequestError(detail, dependency=dependency)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; HTTP dates give None)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
