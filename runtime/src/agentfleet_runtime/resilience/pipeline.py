"""One dependency's resilience pipeline, in one order (outermost first)::

    Fallback( Retry+Budget( CircuitBreaker( RateLimiter( Bulkhead( TimeLimiter( call ))))))

* **Fallback** is outside the pipeline, across pipelines: the model chain
  (:mod:`.llm`) moves to the next model when this pipeline gives up; the tool registry
  answers a structured "unavailable" result.
* **Retry** (tenacity, with the **retry budget**) wraps everything below, so *each
  attempt* is checked by the breaker, takes its own permit and slot and gets its own
  deadline — the progressive timeout grows the deadline after a timeout. Refusals from
  below (circuit open, bulkhead full, rate limit) are never retried.
* **CircuitBreaker** before the rate limiter and bulkhead: an open breaker refuses at
  once, without waiting for a permit or a slot; refusals from below count as neutral.
* **RateLimiter** before the **Bulkhead**: a call waiting for a permit must not hold a
  concurrency slot meanwhile.
* **TimeLimiter** innermost: the deadline covers the call itself, not the waits for a
  permit or a slot (those have their own bounds).

The first attempt runs without tenacity's machinery (a call that succeeds costs a few
attribute reads and three metric increments); tenacity drives the retries. Every mechanism
can be switched off by its feature flag, read on each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from agentfleet_crds.v1alpha1.resiliencepolicy import CategoryPolicy
from agentfleet_runtime.errors import (
    BudgetExhaustedError,
    CallRefusedError,
    DependencyError,
    DependencyTimeoutError,
    RateLimitedError,
    RetryableDependencyError,
    StreamInterruptedError,
)
from agentfleet_runtime.observability import metrics, tracing
from agentfleet_runtime.resilience.breaker import BreakerGuard, CircuitBreaker
from agentfleet_runtime.resilience.budget import RetryBudget
from agentfleet_runtime.resilience.bulkhead import Bulkhead
from agentfleet_runtime.resilience.classify import error_class, proves_not_processed
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock
from agentfleet_runtime.resilience.events import (
    CallRejected,
    EventBus,
    RetriesExhausted,
    RetryScheduled,
)
from agentfleet_runtime.resilience.options import FeatureFlags, PipelineOptions
from agentfleet_runtime.resilience.ratelimit import RateLimiter
from agentfleet_runtime.resilience.recent import RecentCalls

__all__ = ["Attempt", "Pipeline", "backoff_delay"]

T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    """One attempt of a call: its number (1 = first) and its deadline in seconds
    (``None``: no time limit), which the call should also give its client."""

    number: int
    timeout: float | None
    #: Tokens the rate limiter should take for this attempt (model calls).
    tokens: int = 0


def backoff_delay(
    retry: int,
    *,
    base: float,
    multiplier: float,
    maximum: float,
    jitter: str,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay before retry number ``retry`` (1 = the first retry):
    ``min(maximum, base * multiplier**(retry-1))``, randomised by ``jitter`` (``full``:
    uniform in [0, d]; ``equal``: d/2 + uniform in [0, d/2]; ``none``)."""
    delay = min(maximum, base * multiplier ** (retry - 1))
    if jitter == "full":
        return delay * rand()
    if jitter == "equal":
        return delay / 2 + delay / 2 * rand()
    return delay


class _Permit:
    """What one attempt holds: its breaker guard and bulkhead slot (entered in order)."""

    __slots__ = ("_bulkhead", "_guard")

    def __init__(self) -> None:
        self._guard: BreakerGuard | None = None
        self._bulkhead: Bulkhead | None = None

    def exit(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        bulkhead, self._bulkhead = self._bulkhead, None
        if bulkhead is not None:
            bulkhead.release()
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.__exit__(exc_type, exc, tb)


class _Retrying:
    """The state of one call's retries (what tenacity's callbacks read and write)."""

    __slots__ = ("last", "timeout", "why")

    def __init__(self, timeout: float | None, last: BaseException) -> None:
        self.timeout = timeout
        self.last = last
        self.why = "attempts"


class Pipeline:
    """The pipeline of one dependency (see the module doc for the order)."""

    def __init__(
        self,
        name: str,
        options: PipelineOptions,
        *,
        breaker: CircuitBreaker,
        bulkhead: Bulkhead,
        budget: RetryBudget,
        limiter: RateLimiter | None = None,
        flags: FeatureFlags | None = None,
        clock: Clock = SYSTEM_CLOCK,
        bus: EventBus | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        #: Outcomes and latency of the last few minutes' calls (the dependency map).
        self.recent = RecentCalls()
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.budget = budget
        self.limiter = limiter
        self.flags = flags or FeatureFlags()
        self._clock = clock
        self._bus = bus or EventBus()
        self._rand = rand
        self.configure(options)

    def configure(self, options: PipelineOptions) -> None:
        """Apply new options (a reloaded policy): the strategies keep their state."""
        self.options = options
        policy: CategoryPolicy = options.policy
        self.category = options.category.value
        self.timeout = policy.timeout_seconds
        self.breaker.configure(policy.circuit_breaker)
        self.bulkhead.configure(policy.bulkhead)
        self.budget.configure(policy.retry_budget)
        if self.limiter is not None:
            self.limiter.configure(policy.rate_limit)
        self._retry_on = frozenset(c.value for c in policy.retry.retry_on)
        name, category = self.name, self.category
        self._calls_ok = metrics.DEPENDENCY_CALLS.labels(name, category, "success")
        self._seconds_ok = metrics.DEPENDENCY_CALL_SECONDS.labels(name, category, "success")
        self._attempts_ok = metrics.DEPENDENCY_ATTEMPTS.labels(name, category, "success")

    @property
    def refusing(self) -> bool:
        """Whether a call made now would be refused by the circuit breaker."""
        return self.flags.circuit_breaker and self.breaker.refusing

    # -- calls ---------------------------------------------------------------------------

    async def execute(
        self,
        call: Callable[[Attempt], Awaitable[T]],
        *,
        attempt_timeout: float | None = None,
        tokens: int = 0,
        idempotent: bool | None = None,
    ) -> T:
        """Run ``call`` through the pipeline. ``attempt_timeout`` overrides the category's deadline
        of the first attempt; ``idempotent=False`` (a call with effects) retries only
        errors that prove the request was not processed."""
        started = time.perf_counter()
        flags = self.flags
        if flags.retry_budget:
            self.budget.record_call()
        base = attempt_timeout if attempt_timeout is not None else self.timeout
        attempt = Attempt(1, base if flags.timeout else None, tokens)
        try:
            try:
                result = await self._attempt(call, attempt)
            except Exception as exc:
                result = await self._retry(call, attempt, exc, self._attempt, idempotent)
        except BaseException as exc:
            self._finished(started, exc)
            raise
        elapsed = time.perf_counter() - started
        self._calls_ok.inc()
        self._seconds_ok.observe(elapsed)
        self.recent.record(elapsed, ok=True)
        return result

    async def stream(
        self,
        open_stream: Callable[[Attempt], AsyncIterator[T]],
        *,
        attempt_timeout: float | None = None,
        tokens: int = 0,
    ) -> AsyncIterator[T]:
        """Run a streaming call: attempts (with retries) until the stream yields its first
        item; from then on a failure raises :class:`StreamInterruptedError` and is never
        retried (the caller has seen part of the stream). The breaker guard and the
        bulkhead slot are held until the stream ends."""
        started = time.perf_counter()
        flags = self.flags
        if flags.retry_budget:
            self.budget.record_call()
        base = attempt_timeout if attempt_timeout is not None else self.timeout
        attempt = Attempt(1, base if flags.timeout else None, tokens)

        async def opening(attempt: Attempt) -> tuple[T, AsyncIterator[T], _Permit]:
            return await self._open(open_stream, attempt)

        try:
            try:
                first, rest, permit = await opening(attempt)
            except Exception as exc:
                first, rest, permit = await self._retry(opening, attempt, exc, _plain, None)
        except BaseException as exc:
            self._finished(started, exc)
            raise
        failure: BaseException | None = None
        try:
            yield first
            async for item in rest:
                yield item
        except GeneratorExit as exc:  # the consumer stopped reading: not a failure
            failure = exc
            raise
        except Exception as exc:
            if isinstance(exc, DependencyError) and not isinstance(exc, CallRefusedError):
                failure = StreamInterruptedError(
                    f"{self.name}: the stream broke after it had started: {exc.detail}",
                    dependency=self.name,
                    cause=error_class(exc),
                )
                raise failure from exc
            failure = exc
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            closer = getattr(rest, "aclose", None)
            if closer is not None and failure is not None:
                with contextlib.suppress(Exception):
                    await closer()
            if failure is not None:
                permit.exit(type(failure), failure, failure.__traceback__)
                self._finished(started, failure)
            else:
                permit.exit()
                elapsed = time.perf_counter() - started
                self._calls_ok.inc()
                self._seconds_ok.observe(elapsed)
                self.recent.record(elapsed, ok=True)

    # -- one attempt ---------------------------------------------------------------------

    async def _enter(self, attempt: Attempt) -> _Permit:
        """Take the breaker guard, then a rate-limit permit, then a bulkhead slot."""
        flags = self.flags
        permit = _Permit()
        try:
            if flags.circuit_breaker:
                guard = BreakerGuard(self.breaker)
                guard.__enter__()
                permit._guard = guard
            limiter = self.limiter
            if limiter is not None and flags.rate_limit and limiter.active:
                await limiter.acquire(attempt.tokens)
            if flags.bulkhead:
                await self.bulkhead.acquire()
                permit._bulkhead = self.bulkhead
        except BaseException as exc:
            permit.exit(type(exc), exc, exc.__traceback__)
            if isinstance(exc, CallRefusedError):
                self._bus.publish(CallRejected(self.name, self.category, exc.reason, exc.detail))
            raise
        return permit

    async def _attempt(self, call: Callable[[Attempt], Awaitable[T]], attempt: Attempt) -> T:
        permit = await self._enter(attempt)
        traced = tracing.enabled()
        span_cm = (
            tracing.span(
                f"attempt {self.name}",
                {
                    "agentfleet.dependency": self.name,
                    "agentfleet.attempt": attempt.number,
                    "agentfleet.attempt.timeout": attempt.timeout or 0.0,
                },
            )
            if traced
            else None
        )
        if span_cm is not None:
            span_cm.__enter__()
        try:
            result = await self._within(attempt, call(attempt), "did not answer")
        except BaseException as exc:
            self._attempt_failed(exc)
            permit.exit(type(exc), exc, exc.__traceback__)
            if span_cm is not None:
                span_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._attempts_ok.inc()
        permit.exit()
        if span_cm is not None:
            span_cm.__exit__(None, None, None)
        return result

    async def _within[R](self, attempt: Attempt, awaitable: Awaitable[R], failure: str) -> R:
        """``awaitable``, bounded by the attempt's deadline (if it has one); running past it
        is a :class:`DependencyTimeoutError` saying what did not happen in time."""
        if attempt.timeout is None:
            return await awaitable
        try:
            async with asyncio.timeout(attempt.timeout):
                return await awaitable
        except TimeoutError as exc:
            raise DependencyTimeoutError(
                f"{self.name} {failure} within {attempt.timeout:g}s", dependency=self.name
            ) from exc

    async def _open(
        self, open_stream: Callable[[Attempt], AsyncIterator[T]], attempt: Attempt
    ) -> tuple[T, AsyncIterator[T], _Permit]:
        """Open a stream and take its first item, within the attempt's deadline."""
        permit = await self._enter(attempt)
        stream = open_stream(attempt)
        try:
            first = await self._within(attempt, anext(stream), "did not start answering")
        except BaseException as exc:
            self._attempt_failed(exc)
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
            permit.exit(type(exc), exc, exc.__traceback__)
            raise
        self._attempts_ok.inc()
        return first, stream, permit

    def _attempt_failed(self, exc: BaseException) -> None:
        if isinstance(exc, CallRefusedError) or not isinstance(exc, Exception):
            return
        kind = error_class(exc)
        metrics.DEPENDENCY_ATTEMPTS.labels(self.name, self.category, kind).inc()
        metrics.DEPENDENCY_ERRORS.labels(self.name, self.category, kind).inc()

    # -- retries -------------------------------------------------------------------------

    def retryable(self, exc: BaseException, idempotent: bool | None = None) -> bool:
        """Whether ``exc`` may be retried under the current options and flags."""
        if not self.flags.retry or self.options.mesh_retries:
            return False
        if not isinstance(exc, RetryableDependencyError):
            return False
        if exc.error_class not in self._retry_on:
            return False
        if idempotent is None:
            idempotent = self.options.idempotent
        return idempotent or proves_not_processed(exc)

    def _delay(self, retry: int, exc: BaseException) -> float:
        options = self.options.policy.retry
        delay = backoff_delay(
            retry,
            base=options.base_delay_seconds,
            multiplier=options.multiplier,
            maximum=options.max_delay_seconds,
            jitter=options.jitter,
            rand=self._rand,
        )
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    def _stop(self, number: int, exc: BaseException, state: _Retrying) -> bool:
        """Whether to give up after attempt ``number`` failed with ``exc``."""
        retry_options = self.options.policy.retry
        if number >= retry_options.max_attempts or not retry_options.enabled:
            state.why = "attempts"
            return True
        if (
            isinstance(exc, RateLimitedError)
            and exc.retry_after is not None
            and exc.retry_after > retry_options.max_delay_seconds
        ):
            state.why = "retry_after"  # the server asks for a longer wait than we allow
            return True
        if self.flags.retry_budget and not self.budget.try_acquire():
            state.why = "budget"
            return True
        return False

    def _next_timeout(self, exc: BaseException, state: _Retrying) -> float | None:
        if state.timeout is not None and isinstance(exc, DependencyTimeoutError):
            state.timeout *= self.options.policy.retry.timeout_multiplier
        return state.timeout

    async def _retry(
        self,
        call: Callable[[Attempt], Awaitable[Any]],
        first: Attempt,
        exc: BaseException,
        runner: Callable[[Callable[[Attempt], Awaitable[Any]], Attempt], Awaitable[Any]],
        idempotent: bool | None,
    ) -> Any:
        """Attempts 2..n after the first failed with ``exc`` (tenacity drives them)."""

        def retryable(failed: BaseException) -> bool:
            return self.retryable(failed, idempotent)

        if not retryable(exc):
            if isinstance(exc, DependencyError) and not isinstance(exc, CallRefusedError):
                self._exhausted(1, exc, "not_retryable")
            raise exc
        state = _Retrying(first.timeout, exc)
        if self._stop(1, exc, state):
            raise self._gave_up(1, exc, state) from exc
        delay = self._delay(1, exc)
        self._scheduled(1, exc, delay, self._next_timeout(exc, state))
        await self._clock.sleep(delay)

        def stop(retry_state: RetryCallState) -> bool:
            failed = _exception(retry_state)
            return self._stop(retry_state.attempt_number + 1, failed, state)

        def wait(retry_state: RetryCallState) -> float:
            return self._delay(retry_state.attempt_number + 1, _exception(retry_state))

        async def before_sleep(retry_state: RetryCallState) -> None:
            failed = _exception(retry_state)
            delay = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self._scheduled(
                retry_state.attempt_number + 1, failed, delay, self._next_timeout(failed, state)
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(retryable),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        number = 1
        try:
            async for attempt in retrying:
                number += 1
                with attempt:
                    return await runner(call, Attempt(number, state.timeout, first.tokens))
        except Exception as failed:
            if not retryable(failed):
                if isinstance(failed, DependencyError) and not isinstance(failed, CallRefusedError):
                    self._exhausted(number, failed, "not_retryable")
                raise
            raise self._gave_up(number, failed, state) from failed
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _scheduled(
        self, number: int, exc: BaseException, delay: float, next_timeout: float | None
    ) -> None:
        self._bus.publish(
            RetryScheduled(
                self.name,
                self.category,
                number,
                error_class(exc),
                str(exc),
                delay,
                next_timeout,
            )
        )

    def _exhausted(self, attempts: int, exc: BaseException, why: str) -> None:
        self._bus.publish(
            RetriesExhausted(self.name, self.category, attempts, error_class(exc), str(exc), why)
        )

    def _gave_up(self, attempts: int, exc: BaseException, state: _Retrying) -> BaseException:
        self._exhausted(attempts, exc, state.why)
        if state.why == "budget":
            refusal = BudgetExhaustedError(
                f"{self.name}: retry budget exhausted; last error after {attempts} "
                f"attempt(s): {exc}",
                dependency=self.name,
                cause=error_class(exc),
            )
            self._bus.publish(
                CallRejected(self.name, self.category, refusal.reason, refusal.detail)
            )
            return refusal
        if isinstance(exc, DependencyError):
            exc.extensions.setdefault("attempts", attempts)
        return exc

    def _finished(self, started: float, exc: BaseException) -> None:
        elapsed = time.perf_counter() - started
        if isinstance(exc, CallRefusedError):
            outcome = "rejected"
            self.recent.refused()
        elif isinstance(exc, Exception):
            outcome = "failure"
            self.recent.record(elapsed, ok=False)
        else:
            outcome = "cancelled"
        metrics.DEPENDENCY_CALLS.labels(self.name, self.category, outcome).inc()
        metrics.DEPENDENCY_CALL_SECONDS.labels(self.name, self.category, outcome).observe(elapsed)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "timeout_seconds": self.timeout,
            "max_attempts": self.options.policy.retry.max_attempts,
            "single_attempt": self.options.mesh_retries,
            "breaker": self.breaker.snapshot(),
            "bulkhead": {
                "max_concurrent": self.bulkhead.max_concurrent,
                "in_flight": self.bulkhead.in_flight,
                "waiting": self.bulkhead.waiting,
            },
            "retry_budget": self.budget.snapshot(),
            "rate_limit": None
            if self.limiter is None
            else self.limiter.options.model_dump(by_alias=True),
        }


async def _plain[R](call: Callable[[Attempt], Awaitable[R]], attempt: Attempt) -> R:
    return await call(attempt)


def _exception(retry_state: RetryCallState) -> BaseException:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    assert exc is not None
    return exc
