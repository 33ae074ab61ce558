"""How the resilience layer reads an error: its class name (metrics, ``retryOn``), whether
it counts against a circuit breaker, and whether it proves the request was not
processed (the only errors a non-idempotent call may be retried on)."""

from __future__ import annotations

import asyncio
from typing import Literal

from agentfleet_runtime.errors import (
    AgentfleetError,
    CallRefusedError,
    DependencyAuthError,
    DependencyError,
    DependencyNotFoundError,
    DeprecatedError,
    OverloadedError,
    QuotaExceededError,
    RateLimitedError,
    StreamInterruptedError,
    UpstreamBadRequestError,
)

BreakerOutcome = Literal["failure", "success", "neutral"]

_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (DependencyAuthError, "auth"),
    (UpstreamBadRequestError, "badRequest"),
    (QuotaExceededError, "quotaExceeded"),
    (DependencyNotFoundError, "notFound"),
    (DeprecatedError, "deprecated"),
    (StreamInterruptedError, "streamInterrupted"),
    (DependencyError, "dependency"),
    (AgentfleetError, "agentfleet"),
    (asyncio.CancelledError, "cancelled"),
)


def error_class(exc: BaseException) -> str:
    """``rateLimited``, ``timeout``... (the CRD's ``ErrorClass`` for retryable errors),
    ``auth``, ``badRequest``..., ``circuitOpen``... for refusals, else ``internal``."""
    if isinstance(exc, AgentfleetError) and exc.error_class is not None:
        return exc.error_class
    if isinstance(exc, CallRefusedError):
        head, *rest = exc.reason.split("_")
        return head + "".join(part.title() for part in rest)
    for kind, name in _NAMES:
        if isinstance(exc, kind):
            return name
    return "internal"


def breaker_outcome(exc: BaseException) -> BreakerOutcome:
    """How an attempt that raised ``exc`` counts for a circuit breaker.

    * ``failure``: the dependency cannot serve us now — timeouts, connection errors,
      overload, server errors, a deprecated/removed or unknown model/service, exhausted
      quota, refused credentials, and unexpected errors;
    * ``success``: it answered properly and said no to *our request* (bad request, or a
      domain error such as a conflict);
    * ``neutral``: neither — we were throttled (the rate limiter and Retry-After handle
      it), the pipeline itself refused, or the call was cancelled.
    """
    if isinstance(exc, RateLimitedError | CallRefusedError) or not isinstance(exc, Exception):
        return "neutral"
    if isinstance(exc, UpstreamBadRequestError):
        return "success"
    if isinstance(exc, AgentfleetError) and not isinstance(exc, DependencyError):
        return "success"  # a domain outcome (a lost lease, a conflict): it answered
    return "failure"


def proves_not_processed(exc: BaseException) -> bool:
    """The dependency refused before doing anything (throttled, overloaded), so repeating
    a call with effects is safe."""
    return isinstance(exc, RateLimitedError | OverloadedError | CallRefusedError)
