"""What the resilience layer reports, as events named in the past tense.

Strategies publish events to an :class:`EventBus`; the default subscribers turn them into
the metrics of :mod:`agentfleet_runtime.observability.metrics` and structured log lines
(which carry the correlation ids bound to the logging context: request id, session,
turn). Events are only created off the happy path (a retry, a refusal, a transition...),
so a call that succeeds first time publishes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agentfleet_runtime.observability import metrics

__all__ = [
    "BreakerStateChanged",
    "CallRejected",
    "EventBus",
    "FallbackUsed",
    "ResilienceEvent",
    "RetriesExhausted",
    "RetryScheduled",
    "metrics_and_logs",
]

log = logging.getLogger("agentfleet_runtime.resilience")


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """An attempt failed with a retryable error; the next one starts after ``delay``."""

    dependency: str
    category: str
    attempt: int
    error_class: str
    error: str
    delay: float
    next_timeout: float | None


@dataclass(frozen=True, slots=True)
class RetriesExhausted:
    """The call failed for good after ``attempts`` attempts (``why``: attempts, budget,
    retry_after, not_retryable)."""

    dependency: str
    category: str
    attempts: int
    error_class: str
    error: str
    why: str


@dataclass(frozen=True, slots=True)
class CallRejected:
    """The pipeline refused the call (``reason``: circuit_open, bulkhead_full,
    rate_limited, budget_exhausted)."""

    dependency: str
    category: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """A circuit breaker went from ``old`` to ``new`` (``source``: calls, manual, shared)."""

    breaker: str
    old: str
    new: str
    source: str


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A model call went to the next model of the fallback chain."""

    agent: str
    from_model: str
    to_model: str
    reason: str


ResilienceEvent = (
    RetryScheduled | RetriesExhausted | CallRejected | BreakerStateChanged | FallbackUsed
)

_STATE_VALUE = {"closed": 0, "half-open": 1, "open": 2, "forced-closed": 0, "forced-open": 2}


class EventBus:
    """Subscribers of resilience events (called synchronously, in order; a subscriber that
    raises is logged and skipped)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[ResilienceEvent], None]] = []

    def subscribe(self, subscriber: Callable[[ResilienceEvent], None]) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: ResilienceEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("resilience event subscriber failed")


def metrics_and_logs(event: ResilienceEvent) -> None:
    """The default subscriber: metrics and a log line per event."""
    match event:
        case RetryScheduled():
            metrics.RETRIES.labels(event.dependency, event.category, event.error_class).inc()
            log.warning(
                "retry scheduled: %s attempt %d failed (%s), next in %.3fs",
                event.dependency,
                event.attempt,
                event.error_class,
                event.delay,
                extra={
                    "resilience_event": "RetryScheduled",
                    "dependency": event.dependency,
                    "attempt": event.attempt,
                    "error_class": event.error_class,
                    "error": event.error,
                    "delay_seconds": round(event.delay, 4),
                    "next_timeout_seconds": event.next_timeout,
                },
            )
        case RetriesExhausted():
            if event.why != "not_retryable":
                metrics.RETRIES_EXHAUSTED.labels(event.dependency, event.category).inc()
            log.error(
                "call failed: %s after %d attempt(s) (%s, %s)",
                event.dependency,
                event.attempts,
                event.error_class,
                event.why,
                extra={
                    "resilience_event": "RetriesExhausted",
                    "dependency": event.dependency,
                    "attempts": event.attempts,
                    "error_class": event.error_class,
                    "error": event.error,
                    "why": event.why,
                },
            )
        case CallRejected():
            metrics.REJECTIONS.labels(event.dependency, event.category, event.reason).inc()
            log.warning(
                "call rejected: %s (%s)",
                event.dependency,
                event.reason,
                extra={
                    "resilience_event": "CallRejected",
                    "dependency": event.dependency,
                    "reason": event.reason,
                    "detail": event.detail,
                },
            )
        case BreakerStateChanged():
            metrics.BREAKER_STATE.labels(event.breaker).set(_STATE_VALUE.get(event.new, 0))
            metrics.BREAKER_TRANSITIONS.labels(event.breaker, event.old, event.new).inc()
            level = logging.WARNING if event.new in ("open", "forced-open") else logging.INFO
            log.log(
                level,
                "circuit breaker %s: %s -> %s (%s)",
                event.breaker,
                event.old,
                event.new,
                event.source,
                extra={
                    "resilience_event": "BreakerStateChanged",
                    "breaker": event.breaker,
                    "from_state": event.old,
                    "to_state": event.new,
                    "source": event.source,
                },
            )
        case FallbackUsed():
            metrics.MODEL_FALLBACKS.labels(
                event.agent, event.from_model, event.to_model, event.reason
            ).inc()
            log.warning(
                "model fallback: %s -> %s (%s)",
                event.from_model,
                event.to_model,
                event.reason,
                extra={
                    "resilience_event": "FallbackUsed",
                    "agent": event.agent,
                    "from_model": event.from_model,
                    "to_model": event.to_model,
                    "reason": event.reason,
                },
            )
