"""Model calls under real faults: the fake provider over real HTTP, the real OpenAI SDK
(SDK retries off), the model chain with its pipelines and fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentfleet_crds.v1alpha1.agent import ModelProviderName, ModelSpec
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyAuthError,
    ModelsUnavailableError,
    StreamInterruptedError,
)
from agentfleet_runtime.messages import user_message
from agentfleet_runtime.providers.base import ModelRequest, ModelResponse, TextDelta
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.resilience import ManualClock, ResilienceRegistry
from agentfleet_runtime.resilience.events import FallbackUsed, RetryScheduled
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider

from .conftest import Recorder, chain


def spec(fake: RunningFakeProvider, name: str = "fake-model", timeout: float = 5.0) -> ModelSpec:
    return ModelSpec(
        provider=ModelProviderName.FAKE, name=name, base_url=fake.url, timeout_seconds=timeout
    )


def request() -> ModelRequest:
    return ModelRequest(model="fake-model", system="be brief", messages=[user_message("hi")])


@pytest.fixture
async def backup() -> AsyncIterator[RunningFakeProvider]:
    async with running_fake_provider() as fake:
        yield fake


@pytest.fixture
async def pool() -> AsyncIterator[ProviderPool]:
    pool = ProviderPool(ProviderSettings())
    yield pool
    await pool.aclose()


async def test_rate_limited_backs_off_honouring_retry_after(
    fake_provider: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
    clock: ManualClock,
) -> None:
    fake_provider.script.push_error(429, retry_after=7)
    fake_provider.script.push_text("hello")
    models = chain(registry, pool, spec(fake_provider), base_delay=0.1)
    response = await models.complete(request())
    assert response.message["content"] == "hello"
    assert len(fake_provider.script.requests) == 2  # one attempt each: SDK retries are off
    assert clock.slept == [7.0]


async def test_model_unavailable_opens_the_breaker_and_falls_back(
    fake_provider: RunningFakeProvider,
    backup: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
    recorder: Recorder,
) -> None:
    fake_provider.script.fallback = FakeReply(status=503)
    backup.script.fallback = FakeReply(text="from the backup")
    models = chain(
        registry,
        pool,
        spec(fake_provider),
        spec(backup, name="backup-model"),
        attempts=2,
        threshold=2,
    )
    first = await models.complete(request())
    assert first.message["content"] == "from the backup"
    assert len(fake_provider.script.requests) == 2  # retried once, then fell back
    breaker = registry.find_breaker("llm:fake/fake-model")
    assert breaker.state == "open"
    second = await models.complete(request())
    assert second.message["content"] == "from the backup"
    assert len(fake_provider.script.requests) == 2  # the open breaker sent nothing
    reasons = [e.reason for e in recorder.of(FallbackUsed)]
    assert reasons == ["overloaded", "circuitOpen"]


async def test_auth_error_fails_at_once_and_refreshes_credentials(
    fake_provider: RunningFakeProvider,
    backup: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
) -> None:
    fake_provider.script.push_error(401, message="bad key")
    models = chain(registry, pool, spec(fake_provider), spec(backup), attempts=3)
    with pytest.raises(DependencyAuthError):
        await models.complete(request())
    assert len(fake_provider.script.requests) == 1  # no retry
    assert backup.script.requests == deque_empty()  # no fallback hides a bad key
    assert len(pool) == 0  # the provider built with the refused key was retired
    fake_provider.script.push_text("with a fresh key")
    assert (await models.complete(request())).message["content"] == "with a fresh key"
    assert len(pool) == 1


def deque_empty() -> object:
    from collections import deque

    return deque()


async def test_timeout_is_retried_with_a_longer_timeout(
    fake_provider: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
    recorder: Recorder,
) -> None:
    fake_provider.script.push(
        FakeReply(text="late", latency_seconds=0.4), FakeReply(text="in time", latency_seconds=0.4)
    )
    models = chain(registry, pool, spec(fake_provider, timeout=0.3), attempts=2, timeout=10)
    response = await models.complete(request())
    assert response.message["content"] == "in time"
    (retry,) = recorder.of(RetryScheduled)
    assert retry.error_class == "timeout"
    assert retry.next_timeout == pytest.approx(0.45)


async def test_overloaded_everywhere_gives_models_unavailable(
    fake_provider: RunningFakeProvider,
    backup: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
) -> None:
    fake_provider.script.fallback = FakeReply(status=529)
    backup.script.fallback = FakeReply(status=529)
    models = chain(registry, pool, spec(fake_provider), spec(backup, "b"), attempts=2, threshold=2)
    with pytest.raises(ModelsUnavailableError) as caught:
        await models.complete(request())
    assert [f["reason"] for f in caught.value.failures] == ["overloaded", "overloaded"]
    assert registry.find_breaker("llm:fake/fake-model").state == "open"
    assert registry.find_breaker("llm:fake/b").state == "open"
    with pytest.raises(ModelsUnavailableError) as again:
        await models.complete(request())
    assert {f["reason"] for f in again.value.failures} == {"circuitOpen"}


async def test_a_stream_falls_back_before_its_first_token_only(
    fake_provider: RunningFakeProvider,
    backup: RunningFakeProvider,
    registry: ResilienceRegistry,
    pool: ProviderPool,
) -> None:
    fake_provider.script.push(FakeReply(status=503))
    backup.script.push(FakeReply(text="one two three four", drop_after_chunks=2))
    models = chain(registry, pool, spec(fake_provider), spec(backup, "b"), attempts=1)
    texts: list[str] = []

    async def consume() -> None:
        async for item in models.stream(request()):
            if isinstance(item, TextDelta):
                texts.append(item.text)

    with pytest.raises(StreamInterruptedError):
        await consume()
    assert "".join(texts).split() == ["one", "two"]
    assert len(backup.script.requests) == 1  # a started stream is never retried


async def test_a_whole_stream_through_the_chain(
    fake_provider: RunningFakeProvider, registry: ResilienceRegistry, pool: ProviderPool
) -> None:
    fake_provider.script.push(FakeReply(status=502), FakeReply(text="all good"))
    models = chain(registry, pool, spec(fake_provider), attempts=2, base_delay=0)
    items = [item async for item in models.stream(request())]
    assert isinstance(items[-1], ModelResponse)
    assert items[-1].message["content"] == "all good"


async def test_breaker_refusal_is_a_circuit_open_error_for_a_single_model(
    fake_provider: RunningFakeProvider, registry: ResilienceRegistry, pool: ProviderPool
) -> None:
    fake_provider.script.fallback = FakeReply(status=500)
    models = chain(registry, pool, spec(fake_provider), attempts=1, threshold=1)
    with pytest.raises(ModelsUnavailableError):
        await models.complete(request())
    with pytest.raises(ModelsUnavailableError) as caught:
        await models.complete(request())
    assert caught.value.failures[0]["reason"] == CircuitOpenError.reason.replace("_o", "O")
