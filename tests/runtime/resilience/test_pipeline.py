"""The pipeline's strategies on a manual clock: retries and backoff, Retry-After,
progressive timeouts, retry budget, circuit breaker (pybreaker from asyncio), bulkhead,
rate limiter, feature flags, manual control, options."""

from __future__ import annotations

import asyncio

import pytest

from agentfleet_crds.v1alpha1.resiliencepolicy import (
    BulkheadOptions,
    RateLimitOptions,
    ResiliencePolicySpec,
    RetryBudgetOptions,
)
from agentfleet_runtime.errors import (
    BudgetExhaustedError,
    BulkheadFullError,
    CircuitOpenError,
    DependencyAuthError,
    DependencyTimeoutError,
    OverloadedError,
    RateLimitedError,
    RateLimitExceededError,
    StreamInterruptedError,
    UpstreamBadRequestError,
    UpstreamServerError,
)
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.resilience import (
    Attempt,
    ManualClock,
    RateLimiter,
    ResilienceRegistry,
    category_policy,
    environment_defaults,
)
from agentfleet_runtime.resilience.events import (
    BreakerStateChanged,
    CallRejected,
    RetriesExhausted,
    RetryScheduled,
)
from agentfleet_runtime.resilience.pipeline import backoff_delay

from .conftest import Recorder, category, policy


class Flaky:
    """Fails with the given errors in order, then answers ``"ok"``; records attempts."""

    def __init__(self, *errors: BaseException, delay: float = 0.0) -> None:
        self.errors = list(errors)
        self.attempts: list[Attempt] = []
        self.delay = delay

    async def __call__(self, attempt: Attempt) -> str:
        self.attempts.append(Attempt(attempt.number, attempt.timeout))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def down(n: int = 1) -> list[BaseException]:
    return [UpstreamServerError("boom", dependency="x") for _ in range(n)]


async def test_retries_with_exponential_backoff_then_succeeds(
    registry: ResilienceRegistry, clock: ManualClock, recorder: Recorder
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=4, base_delay=0.5)))
    call = Flaky(*down(3))
    assert await pipeline.execute(call) == "ok"
    assert [a.number for a in call.attempts] == [1, 2, 3, 4]
    assert clock.slept == [0.5, 1.0, 2.0]  # base * 2**n, jitter off (rand = 1)
    scheduled = recorder.of(RetryScheduled)
    assert [e.attempt for e in scheduled] == [1, 2, 3]
    assert {e.error_class for e in scheduled} == {"serverError"}


def test_backoff_jitter_and_cap() -> None:
    assert backoff_delay(10, base=1, multiplier=2, maximum=30, jitter="none") == 30
    assert backoff_delay(2, base=1, multiplier=2, maximum=30, jitter="full", rand=lambda: 0.5) == 1
    assert backoff_delay(2, base=1, multiplier=2, maximum=30, jitter="equal", rand=lambda: 0) == 1


async def test_gives_up_after_max_attempts_with_the_last_error(
    registry: ResilienceRegistry, recorder: Recorder
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=3)))
    call = Flaky(*down(5))
    with pytest.raises(UpstreamServerError) as caught:
        await pipeline.execute(call)
    assert len(call.attempts) == 3
    assert caught.value.extensions["attempts"] == 3
    (exhausted,) = recorder.of(RetriesExhausted)
    assert (exhausted.attempts, exhausted.why) == (3, "attempts")


async def test_retry_after_is_honoured(registry: ResilienceRegistry, clock: ManualClock) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(base_delay=0.1)))
    call = Flaky(RateLimitedError("slow down", dependency="x", retry_after=7.0))
    assert await pipeline.execute(call) == "ok"
    assert clock.slept == [7.0]


async def test_retry_after_beyond_the_longest_delay_gives_up_at_once(
    registry: ResilienceRegistry, recorder: Recorder
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(max_delay=10)))
    call = Flaky(RateLimitedError("come back tomorrow", dependency="x", retry_after=3600))
    with pytest.raises(RateLimitedError):
        await pipeline.execute(call)
    assert len(call.attempts) == 1
    assert recorder.of(RetriesExhausted)[0].why == "retry_after"


async def test_non_retryable_errors_fail_at_once(registry: ResilienceRegistry) -> None:
    pipeline = registry.pipeline("x", "http")
    for error in (DependencyAuthError("no", dependency="x"), UpstreamBadRequestError("bad")):
        call = Flaky(error)
        with pytest.raises(type(error)):
            await pipeline.execute(call)
        assert len(call.attempts) == 1


async def test_timeouts_get_progressively_longer(registry: ResilienceRegistry) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(timeout=0.05, base_delay=0)))
    call = Flaky(delay=0.0)
    slow_first = [0.2, 0.2, 0.0]

    async def slow(attempt: Attempt) -> str:
        call.attempts.append(Attempt(attempt.number, attempt.timeout))
        await asyncio.sleep(slow_first[attempt.number - 1])
        return "ok"

    assert await pipeline.execute(slow, attempt_timeout=0.05) == "ok"
    timeouts = [a.timeout for a in call.attempts]
    assert timeouts == pytest.approx([0.05, 0.075, 0.1125])  # x1.5 after each timeout


async def test_own_deadline_raises_a_dependency_timeout(registry: ResilienceRegistry) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=1)))

    async def hang(_attempt: Attempt) -> str:
        await asyncio.sleep(10)
        return "never"

    with pytest.raises(DependencyTimeoutError, match=r"did not answer within 0\.05s"):
        await pipeline.execute(hang, attempt_timeout=0.05)


async def test_retry_budget_caps_retries(registry: ResilienceRegistry, recorder: Recorder) -> None:
    budget = RetryBudgetOptions(ratio=0.0, min_retries_per_second=0.2, window_seconds=10)
    pipeline = registry.pipeline(
        "x", "http", policy(http=category(attempts=5, threshold=100, retry_budget=budget))
    )
    first = Flaky(*down(1))
    assert await pipeline.execute(first) == "ok"  # 2 retries allowed in the window: uses 1
    second = Flaky(*down(5))
    with pytest.raises(BudgetExhaustedError) as caught:
        await pipeline.execute(second)
    assert len(second.attempts) == 2  # one retry left in the budget, then refused
    assert caught.value.extensions["cause"] == "serverError"
    assert recorder.of(CallRejected)[-1].reason == "budget_exhausted"


async def test_breaker_opens_refuses_half_opens_and_closes(
    registry: ResilienceRegistry, clock: ManualClock, recorder: Recorder
) -> None:
    pipeline = registry.pipeline(
        "x", "http", policy(http=category(attempts=1, threshold=2, recovery=30))
    )
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await pipeline.execute(Flaky(*down()))
    assert pipeline.breaker.state == "open"
    refused = Flaky()
    with pytest.raises(CircuitOpenError) as caught:
        await pipeline.execute(refused)
    assert refused.attempts == []  # nothing was sent
    assert caught.value.retry_after == pytest.approx(30)
    clock.advance(30.1)
    assert await pipeline.execute(Flaky()) == "ok"  # the trial call
    assert pipeline.breaker.state == "closed"
    transitions = [(e.old, e.new) for e in recorder.of(BreakerStateChanged)]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    value = metrics.BREAKER_STATE.labels("x")._value.get()
    assert value == 0


async def test_a_failed_trial_call_opens_the_breaker_again(
    registry: ResilienceRegistry, clock: ManualClock
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=1, threshold=1)))
    with pytest.raises(UpstreamServerError):
        await pipeline.execute(Flaky(*down()))
    clock.advance(31)
    with pytest.raises(UpstreamServerError):
        await pipeline.execute(Flaky(*down()))
    assert pipeline.breaker.state == "open"
    assert pipeline.breaker.retry_after() == pytest.approx(30)


async def test_half_open_lets_a_bounded_number_of_trial_calls_through(
    registry: ResilienceRegistry, clock: ManualClock
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=1, threshold=1)))
    with pytest.raises(UpstreamServerError):
        await pipeline.execute(Flaky(*down()))
    clock.advance(31)
    gate = asyncio.Event()

    async def trial(_attempt: Attempt) -> str:
        await gate.wait()
        return "ok"

    probe = asyncio.create_task(pipeline.execute(trial))
    await asyncio.sleep(0.01)
    with pytest.raises(CircuitOpenError, match="trial calls in progress"):
        await pipeline.execute(Flaky())
    gate.set()
    assert await probe == "ok"
    assert pipeline.breaker.state == "closed"


async def test_cancelled_and_throttled_calls_do_not_count(registry: ResilienceRegistry) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=1, threshold=2)))
    with pytest.raises(UpstreamServerError):
        await pipeline.execute(Flaky(*down()))
    assert pipeline.breaker.failures == 1

    async def forever(_attempt: Attempt) -> str:
        await asyncio.sleep(10)
        return "never"

    task = asyncio.create_task(pipeline.execute(forever))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RateLimitedError):
        await pipeline.execute(Flaky(RateLimitedError("429", dependency="x", retry_after=99)))
    assert pipeline.breaker.failures == 1  # neither a failure nor a success
    assert pipeline.breaker.state == "closed"
    with pytest.raises(UpstreamBadRequestError):  # answered properly: a success
        await pipeline.execute(Flaky(UpstreamBadRequestError("bad", dependency="x")))
    assert pipeline.breaker.failures == 0


async def test_bulkhead_bounds_concurrency(registry: ResilienceRegistry) -> None:
    bulkhead = BulkheadOptions(max_concurrent=2, max_wait_seconds=0.05)
    pipeline = registry.pipeline("x", "http", policy(http=category(bulkhead=bulkhead)))
    gate = asyncio.Event()

    async def held(_attempt: Attempt) -> str:
        await gate.wait()
        return "ok"

    running = [asyncio.create_task(pipeline.execute(held)) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert pipeline.bulkhead.in_flight == 2
    with pytest.raises(BulkheadFullError):
        await pipeline.execute(held)
    waiting = asyncio.create_task(pipeline.execute(Flaky()))
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*running, waiting) == ["ok", "ok", "ok"]
    assert pipeline.bulkhead.in_flight == 0
    assert pipeline.breaker.failures == 0  # a refusal is neutral


async def test_rate_limiter_waits_then_refuses(clock: ManualClock) -> None:
    limiter = RateLimiter("llm:p", RateLimitOptions(requests_per_minute=2), period=0.2, max_wait=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        await limiter.acquire()
    assert loop.time() - started >= 0.08  # the third waited for the bucket to leak
    impatient = RateLimiter(
        "llm:q", RateLimitOptions(requests_per_minute=1), period=10, max_wait=0.05
    )
    await impatient.acquire()
    with pytest.raises(RateLimitExceededError):
        await impatient.acquire()


async def test_tokens_per_minute_charges_usage_beyond_the_estimate() -> None:
    limiter = RateLimiter(
        "llm:p", RateLimitOptions(tokens_per_minute=100), period=10, max_wait=0.05
    )
    await limiter.acquire(tokens=10)
    limiter.record_usage(used=95, estimated=10)  # 85 more than estimated: charged next
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire(tokens=10)


async def test_feature_flags_switch_mechanisms_off_at_runtime(
    registry: ResilienceRegistry,
) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=3, threshold=1)))
    registry.set_flags(retry=False)
    call = Flaky(*down(2))
    with pytest.raises(UpstreamServerError):
        await pipeline.execute(call)
    assert len(call.attempts) == 1
    assert pipeline.breaker.state == "open"
    registry.set_flags(circuit_breaker=False, retry=True)
    assert await pipeline.execute(Flaky(*down(1))) == "ok"  # breaker skipped, retried
    assert metrics.FEATURE_FLAG.labels("circuit_breaker")._value.get() == 0


async def test_manual_control(registry: ResilienceRegistry, recorder: Recorder) -> None:
    pipeline = registry.pipeline("x", "http", policy(http=category(attempts=1, threshold=1)))
    await pipeline.breaker.force_open()
    with pytest.raises(CircuitOpenError, match="forced open"):
        await pipeline.execute(Flaky())
    await pipeline.breaker.force_closed()
    for _ in range(3):  # failures are let through and not counted
        with pytest.raises(UpstreamServerError):
            await pipeline.execute(Flaky(*down()))
    assert pipeline.breaker.state == "forced-closed"
    await pipeline.breaker.reset()
    assert pipeline.breaker.state == "closed"
    assert [e.new for e in recorder.of(BreakerStateChanged)] == [
        "forced-open",
        "forced-closed",
        "closed",
    ]


async def test_a_stream_is_retried_only_before_its_first_item(
    registry: ResilienceRegistry,
) -> None:
    pipeline = registry.pipeline("x", "llm", policy(llm=category(attempts=3)))
    opened: list[int] = []

    async def chunks(attempt: Attempt) -> object:
        opened.append(attempt.number)
        if attempt.number == 1:
            raise OverloadedError("busy", dependency="x")
        yield "a"
        yield "b"
        raise UpstreamServerError("cut", dependency="x")

    received: list[object] = []

    async def consume() -> None:
        async for item in pipeline.stream(chunks):  # type: ignore[arg-type]
            received.append(item)

    with pytest.raises(StreamInterruptedError, match="after it had started"):
        await consume()
    assert received == ["a", "b"]
    assert opened == [1, 2]  # retried before the first item, never after
    assert pipeline.breaker.failures == 2
    assert pipeline.bulkhead.in_flight == 0


def test_environment_defaults_and_policy_overrides() -> None:
    development = category_policy("llm", environment="development")
    assert development.retry.max_attempts == 2
    assert development.circuit_breaker.recovery_timeout_seconds == 5
    production = category_policy("llm", environment="production")
    assert production == ResiliencePolicySpec().llm
    # what a policy sets wins, field by field; the rest comes from the environment
    spec = ResiliencePolicySpec.model_validate({"llm": {"retry": {"maxAttempts": 7}}})
    merged = category_policy("llm", spec, environment="development")
    assert merged.retry.max_attempts == 7
    assert merged.circuit_breaker.failure_threshold == 3  # development's
    assert environment_defaults("staging") == ResiliencePolicySpec()


async def test_registry_hands_out_named_instances_and_reconfigures(
    registry: ResilienceRegistry,
) -> None:
    first = registry.pipeline("x", "http", policy(http=category(threshold=5)))
    await first.breaker.force_open()
    again = registry.pipeline("x", "http", policy(http=category(threshold=9)))
    assert again is first
    assert again.breaker.failure_threshold == 9
    assert again.breaker.state == "forced-open"  # state survives a reload
    assert registry.find_breaker("x") is first.breaker


async def test_flags_file_is_reloaded_when_it_changes(
    tmp_path: pytest.TempPathFactory, clock: ManualClock
) -> None:
    import os
    from pathlib import Path

    from .conftest import make_registry

    path = Path(str(tmp_path)) / "flags.yaml"
    path.write_text("retry: false\n")
    registry = make_registry(clock, flags_file=path, flags_poll_seconds=0.01)
    registry.start()
    assert registry.flags.retry is False
    path.write_text("retry: true\ncircuit_breaker: false\n")
    os.utime(path, (1, 1))  # a new mtime, whatever the file system's resolution
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not registry.flags.circuit_breaker:
            break
    assert registry.flags.retry is True
    assert registry.flags.circuit_breaker is False
    path.write_text("nonsense: [")
    os.utime(path, (2, 2))
    await asyncio.sleep(0.05)  # a broken file is logged and ignored
    assert registry.flags.circuit_breaker is False
    await registry.aclose()


async def test_guarded_proxy_runs_every_coroutine_method_through_the_pipeline(
    registry: ResilienceRegistry,
) -> None:
    from agentfleet_runtime.deadletters import MemoryDeadLetterStore
    from agentfleet_runtime.resilience.redis import GuardedProxy

    pipeline = registry.pipeline("redis", "database", policy(database=category(threshold=1)))
    store = GuardedProxy(MemoryDeadLetterStore(), pipeline)
    assert await store.list() == []
    assert metrics.DEPENDENCY_CALLS.labels("redis", "database", "success")._value.get() >= 1
    await pipeline.breaker.force_open()
    with pytest.raises(CircuitOpenError):
        await store.list()
    assert store.drain() == []  # not a coroutine method: passes through
