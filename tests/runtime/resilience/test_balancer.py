"""The endpoint balancer on its own: weights from recent latency and errors, ejection by
each endpoint's circuit breaker (and re-admission by its half-open trial call), tiers,
failover rules, deadlines, streams. A manual clock measures latencies deterministically."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agentfleet_crds.v1alpha1.resiliencepolicy import CircuitBreakerOptions
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyAuthError,
    DependencyConnectionError,
    DependencyNotFoundError,
    OverloadedError,
    UpstreamBadRequestError,
    UpstreamServerError,
)
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry
from agentfleet_runtime.resilience.balancer import (
    Endpoint,
    EndpointSet,
    endpoint_key,
    fails_over,
)
from agentfleet_runtime.resilience.breaker import CircuitBreaker

from .conftest import make_registry

A, B, C = "http://a:8000/v1", "http://b:8000/v1", "http://c:8000/v1"


def breakers(clock: ManualClock, threshold: int = 3, recovery: float = 30.0) -> Any:
    options = CircuitBreakerOptions(failure_threshold=threshold, recovery_timeout_seconds=recovery)
    return lambda name: CircuitBreaker(name, options, clock=clock)


def endpoint_set(
    clock: ManualClock, *tiers: list[str | None], seed: int = 7, **options: Any
) -> EndpointSet:
    return EndpointSet(
        "llm:fake/m",
        list(tiers),
        breaker=breakers(clock, **options),
        clock=clock,
        rand=random.Random(seed).random,
    )


class Servers:
    """Fake endpoints answering after a latency (on the manual clock) or with an error."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.latency: dict[str, float] = {}
        self.errors: dict[str, Exception] = {}
        self.calls: list[str] = []

    async def __call__(self, endpoint: Endpoint) -> str:
        self.calls.append(endpoint.key)
        self.clock.advance(self.latency.get(endpoint.key, 0.05))
        error = self.errors.get(endpoint.key)
        if error is not None:
            raise error
        return endpoint.key

    def count(self, key: str) -> int:
        return self.calls.count(key)


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_endpoint_keys() -> None:
    assert endpoint_key("https://vllm-0.llm.svc:8000/v1/") == "vllm-0.llm.svc:8000/v1"
    assert endpoint_key("http://10.0.0.7:8080/mcp") == "10.0.0.7:8080/mcp"
    assert endpoint_key(None) == "default"


def test_duplicate_urls_are_kept_once_and_breakers_named_per_endpoint(
    clock: ManualClock,
) -> None:
    endpoints = endpoint_set(clock, [A, B, A + "/"], [B, C])
    assert [e.key for e in endpoints.endpoints] == ["a:8000/v1", "b:8000/v1", "c:8000/v1"]
    assert [e.tier for e in endpoints.endpoints] == [0, 0, 1]
    assert endpoints.get("b:8000/v1").breaker.name == "llm:fake/m@b:8000/v1"


async def test_weights_shift_toward_the_faster_endpoint(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A, B])
    servers = Servers(clock)
    servers.latency = {"a:8000/v1": 0.02, "b:8000/v1": 0.4}
    for _ in range(300):
        await endpoints.call(servers)
    fast, slow = servers.count("a:8000/v1"), servers.count("b:8000/v1")
    assert fast > 250  # ~95%: weights are inversely proportional to latency (floor 5%)
    assert slow >= 3  # the floor keeps measuring the slow one
    a, b = endpoints.get("a:8000/v1"), endpoints.get("b:8000/v1")
    assert a.latency == pytest.approx(0.02)
    assert b.latency == pytest.approx(0.4)

    # B gets faster than A: its trickle of calls measures it, and traffic moves over.
    servers.latency = {"a:8000/v1": 0.4, "b:8000/v1": 0.02}
    servers.calls.clear()
    for _ in range(300):
        await endpoints.call(servers)
    assert servers.count("b:8000/v1") > 200


async def test_errors_lower_an_endpoints_weight_before_it_is_ejected(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A, B], threshold=1000)
    servers = Servers(clock)
    flaky = 0

    async def call(endpoint: Endpoint) -> str:
        nonlocal flaky
        if endpoint.key == "b:8000/v1":
            flaky += 1
            if flaky % 2:  # every other call to B fails
                servers.calls.append(endpoint.key)
                raise OverloadedError("busy", dependency="x")
        return await servers(endpoint)

    for _ in range(300):
        assert await endpoints.call(call) in ("a:8000/v1", "b:8000/v1")  # failed over
    assert endpoints.get("b:8000/v1").error_rate > 0.2
    assert servers.count("a:8000/v1") > 2 * servers.count("b:8000/v1")


async def test_an_erroring_endpoint_is_ejected_and_readmitted_by_its_breaker(
    clock: ManualClock,
) -> None:
    endpoints = endpoint_set(clock, [A, B], threshold=3, recovery=30)
    servers = Servers(clock)
    servers.errors["b:8000/v1"] = UpstreamServerError("HTTP 500", dependency="x")
    b = endpoints.get("b:8000/v1")
    while b.breaker.state == "closed":
        # Every call succeeds: B's failures are failed over to A within the call.
        assert await endpoints.call(servers) == "a:8000/v1"
    assert b.breaker.state == "open"
    assert b.breaker.failures == 3
    assert [e.key for e in endpoints.admissible()] == ["a:8000/v1"]
    assert gauge("agentfleet_endpoint_ejected", dependency="llm:fake/m", endpoint="b:8000/v1") == 1
    servers.calls.clear()
    for _ in range(50):
        await endpoints.call(servers)
    assert servers.count("b:8000/v1") == 0  # ejected: not even tried

    del servers.errors["b:8000/v1"]  # B recovers
    clock.advance(30)  # the breaker's recovery timeout: half-open, admissible for a trial
    assert {e.key for e in endpoints.admissible()} == {"a:8000/v1", "b:8000/v1"}
    for _ in range(400):
        await endpoints.call(servers)
        if servers.count("b:8000/v1"):
            break
    assert servers.count("b:8000/v1") == 1
    assert b.breaker.state == "closed"  # the trial call succeeded: re-admitted
    assert gauge("agentfleet_endpoint_ejected", dependency="llm:fake/m", endpoint="b:8000/v1") == 0


async def test_a_failed_trial_call_ejects_it_again(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A], [B], threshold=1, recovery=10)
    servers = Servers(clock)
    servers.errors["a:8000/v1"] = DependencyConnectionError("refused", dependency="x")
    assert await endpoints.call(servers) == "b:8000/v1"
    a = endpoints.get("a:8000/v1")
    assert a.breaker.state == "open"
    clock.advance(10)
    servers.calls.clear()
    assert await endpoints.call(servers) == "b:8000/v1"
    assert servers.calls == ["a:8000/v1", "b:8000/v1"]  # the trial, then the failover
    assert a.breaker.state == "open"
    assert a.breaker.refusing


async def test_every_endpoint_ejected_refuses_with_retry_after(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A, B], threshold=1, recovery=20)
    servers = Servers(clock)
    servers.errors = {
        k: UpstreamServerError("500", dependency="x") for k in ("a:8000/v1", "b:8000/v1")
    }
    with pytest.raises(UpstreamServerError):  # both tried: the last error
        await endpoints.call(servers)
    clock.advance(5)
    with pytest.raises(CircuitOpenError) as refused:
        await endpoints.call(servers)
    assert refused.value.retry_after == pytest.approx(15, abs=0.2)
    assert "every endpoint of llm:fake/m is ejected" in refused.value.detail


async def test_the_preferred_tier_is_used_while_healthy(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A], [B, C], threshold=2, recovery=30)
    servers = Servers(clock)
    for _ in range(20):
        assert await endpoints.call(servers) == "a:8000/v1"
    servers.errors["a:8000/v1"] = DependencyConnectionError("refused", dependency="x")
    for _ in range(20):
        assert await endpoints.call(servers) in ("b:8000/v1", "c:8000/v1")
    assert servers.count("a:8000/v1") == 22  # tried until its breaker opened (2 failures)
    assert servers.count("b:8000/v1")
    assert servers.count("c:8000/v1")
    del servers.errors["a:8000/v1"]
    clock.advance(30)
    assert await endpoints.call(servers) == "a:8000/v1"  # the trial call, then preferred again
    assert endpoints.get("a:8000/v1").breaker.state == "closed"


async def test_failover_rules(clock: ManualClock) -> None:
    assert fails_over(DependencyNotFoundError("no such model", dependency="x"))
    assert fails_over(DependencyConnectionError("reset", dependency="x"))
    assert not fails_over(DependencyAuthError("401", dependency="x"))
    assert not fails_over(UpstreamBadRequestError("400", dependency="x"))
    # A call with effects: only what proves the request was not processed.
    assert not fails_over(DependencyConnectionError("reset", dependency="x"), idempotent=False)
    assert fails_over(OverloadedError("503", dependency="x"), idempotent=False)

    endpoints = endpoint_set(clock, [A], [B])
    servers = Servers(clock)
    servers.errors["a:8000/v1"] = DependencyAuthError("401", dependency="x")
    with pytest.raises(DependencyAuthError):
        await endpoints.call(servers)
    assert servers.calls == ["a:8000/v1"]
    servers.errors["a:8000/v1"] = DependencyConnectionError("reset", dependency="x")
    servers.calls.clear()
    with pytest.raises(DependencyConnectionError):
        await endpoints.call(servers, failover=lambda e: fails_over(e, idempotent=False))
    assert servers.calls == ["a:8000/v1"]


async def test_a_bad_request_counts_as_an_answer(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A, B], threshold=1)
    servers = Servers(clock)
    servers.errors["a:8000/v1"] = UpstreamBadRequestError("400", dependency="x")
    servers.errors["b:8000/v1"] = UpstreamBadRequestError("400", dependency="x")
    for _ in range(5):
        with pytest.raises(UpstreamBadRequestError):
            await endpoints.call(servers)
    assert all(e.breaker.state == "closed" and e.error_rate == 0 for e in endpoints.endpoints)


async def test_retries_go_to_endpoints_not_tried_yet(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A, B, C], threshold=100)
    servers = Servers(clock)
    tried: set[str] = set()
    for _ in range(3):  # three attempts of one call (e.g. the pipeline's retries)
        await endpoints.call(servers, tried=tried)
    assert sorted(servers.calls) == ["a:8000/v1", "b:8000/v1", "c:8000/v1"]
    await endpoints.call(servers, tried=tried)  # all used: start over
    assert len(tried) == 1


async def test_a_call_cut_by_its_deadline_is_the_endpoints_timeout() -> None:
    registry = ResilienceRegistry()
    endpoints = EndpointSet.from_registry(
        registry, "mcp:slow", [[A]], CircuitBreakerOptions(failure_threshold=1)
    )

    async def hang(_endpoint: Endpoint) -> str:
        await asyncio.sleep(5)
        return "late"

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await endpoints.call(hang, deadline=0.05)
    a = endpoints.get("a:8000/v1")
    assert a.breaker.state == "open"
    assert a.latency is not None
    assert a.latency >= 0.04
    assert a.in_flight == 0

    # Cancelled well before its deadline (the caller went away): not the endpoint's fault.
    other = EndpointSet.from_registry(
        registry, "mcp:other", [[B]], CircuitBreakerOptions(failure_threshold=1)
    )
    task = asyncio.create_task(other.call(hang, deadline=10))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert other.get("b:8000/v1").breaker.state == "closed"
    await registry.aclose()


async def test_streams_fail_over_only_before_the_first_item(clock: ManualClock) -> None:
    endpoints = endpoint_set(clock, [A], [B], threshold=1)
    broken_after_start = False

    async def stream(endpoint: Endpoint) -> AsyncIterator[str]:
        if endpoint.key == "a:8000/v1":
            raise OverloadedError("529", dependency="x")
        yield "first"
        if broken_after_start:
            raise DependencyConnectionError("cut", dependency="x")
        yield "second"

    assert [item async for item in endpoints.stream(stream)] == ["first", "second"]
    assert endpoints.get("a:8000/v1").breaker.state == "open"
    broken_after_start = True
    items: list[str] = []

    async def consume() -> None:
        async for item in endpoints.stream(stream):
            items.append(item)

    with pytest.raises(DependencyConnectionError):
        await consume()
    assert items == ["first"]
    b = endpoints.get("b:8000/v1")
    assert b.breaker.state == "open"
    assert b.in_flight == 0


async def test_registry_breakers_degrade_health_without_making_models_unavailable(
    clock: ManualClock,
) -> None:
    registry = make_registry(clock)
    registry.pipeline("llm:fake/m", "llm")
    endpoints = EndpointSet.from_registry(
        registry, "llm:fake/m", [[A, B]], CircuitBreakerOptions(failure_threshold=1)
    )
    servers = Servers(clock)
    servers.errors["a:8000/v1"] = UpstreamServerError("500", dependency="x")
    while endpoints.get("a:8000/v1").breaker.state == "closed":
        await endpoints.call(servers)
    assert registry.find_breaker("llm:fake/m@a:8000/v1").state == "open"
    assert registry.health() == {"status": "degraded", "refusing": ["llm:fake/m@a:8000/v1"]}
    # The admin API resets an endpoint's breaker like any other: re-admitted at once.
    await registry.find_breaker("llm:fake/m@a:8000/v1").reset()
    assert len(endpoints.admissible()) == 2


async def test_without_the_breaker_flag_nothing_is_ejected(clock: ManualClock) -> None:
    registry = make_registry(clock)
    registry.set_flags(circuit_breaker=False)
    endpoints = EndpointSet.from_registry(
        registry,
        "llm:fake/n",
        [[A, B]],
        CircuitBreakerOptions(failure_threshold=1),
        rand=random.Random(7).random,
    )
    servers = Servers(clock)
    servers.errors["a:8000/v1"] = UpstreamServerError("500", dependency="x")
    for _ in range(20):
        assert await endpoints.call(servers) == "b:8000/v1"
    assert len(endpoints.admissible()) == 2
    # not ejected, but weighted down: how often A was tried (and so how high its error
    # average climbed) depends on the draws; any failure counts
    assert endpoints.get("a:8000/v1").error_rate >= 0.2
