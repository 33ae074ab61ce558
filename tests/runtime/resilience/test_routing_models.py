"""Health-based routing of model calls and version fallbacks: the fake provider served as
three real HTTP servers (one model, three endpoints), the real OpenAI SDK, the model chain
with its pipelines. A slow endpoint loses its traffic, a failing one is ejected and its
calls answered by the others; a pinned model version the servers no longer serve (404
model not found on every endpoint, a 400 "does not support tools") falls back to the next
model, recorded with its reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from agentfleet_crds.v1alpha1.agent import ModelProviderName, ModelSpec
from agentfleet_runtime.errors import UpstreamBadRequestError
from agentfleet_runtime.messages import user_message
from agentfleet_runtime.providers.base import ModelRequest, ModelResponse, TextDelta, ToolSpec
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.resilience import ResilienceRegistry, ResilienceSettings
from agentfleet_runtime.resilience.balancer import endpoint_key
from agentfleet_runtime.resilience.events import FallbackUsed
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider

from .conftest import Recorder, chain


@pytest.fixture
async def fakes() -> AsyncIterator[list[RunningFakeProvider]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_fake_provider()) for _ in range(3)]


@pytest.fixture
async def pool() -> AsyncIterator[ProviderPool]:
    pool = ProviderPool(ProviderSettings())
    yield pool
    await pool.aclose()


@pytest.fixture
async def live(recorder: Recorder) -> AsyncIterator[ResilienceRegistry]:
    """A registry on the system clock: endpoint latencies are real."""
    registry = ResilienceRegistry(ResilienceSettings(), environment="production")
    registry.bus.subscribe(recorder)
    yield registry
    await registry.aclose()


def model(name: str, *servers: RunningFakeProvider) -> ModelSpec:
    first, *rest = servers
    return ModelSpec(
        provider=ModelProviderName.FAKE,
        name=name,
        base_url=first.url,
        endpoints=[s.url for s in rest],
        timeout_seconds=5,
    )


#: Short backoffs: these tests are about which endpoint answers, not about waiting.
FAST = {"base_delay": 0.01, "max_delay": 0.05}


def request(tools: bool = False) -> ModelRequest:
    specs = [ToolSpec("lookup", "Look up a word", {"type": "object"})] if tools else []
    return ModelRequest(model="m", system="be brief", messages=[user_message("hi")], tools=specs)


def text(response: ModelResponse) -> str:
    return str(response.message["content"])


def fallbacks(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentfleet_model_fallbacks_total",
        {"agent": "agent", "from_model": "fake/v1", "to_model": "fake/v2", "reason": reason},
    )
    return value or 0.0


async def test_traffic_shifts_away_from_a_slow_endpoint(
    fakes: list[RunningFakeProvider], live: ResilienceRegistry, pool: ProviderPool
) -> None:
    slow, fast_1, fast_2 = fakes
    slow.script.fallback = FakeReply(text="slow", latency_seconds=0.25)
    fast_1.script.fallback = FakeReply(text="fast")
    fast_2.script.fallback = FakeReply(text="fast")
    models = chain(live, pool, model("v1", slow, fast_1, fast_2), **FAST)
    for _ in range(60):
        await models.complete(request())
    assert len(slow.script.requests) <= 10  # at first ~1/3, then the floor's trickle
    assert len(fast_1.script.requests) + len(fast_2.script.requests) >= 50
    counted = REGISTRY.get_sample_value(
        "agentfleet_endpoint_selected_total",
        {"dependency": "llm:fake/v1", "endpoint": endpoint_key(slow.url)},
    )
    assert counted == len(slow.script.requests)


async def test_a_failing_endpoint_is_ejected_and_its_calls_answered_elsewhere(
    fakes: list[RunningFakeProvider],
    live: ResilienceRegistry,
    pool: ProviderPool,
    recorder: Recorder,
) -> None:
    broken, good_1, good_2 = fakes
    broken.script.fallback = FakeReply(status=503)
    good_1.script.fallback = good_2.script.fallback = FakeReply(text="ok")
    models = chain(live, pool, model("v1", good_1, broken, good_2), threshold=3, **FAST)
    for _ in range(100):
        assert text(await models.complete(request())) == "ok"  # never failed
    name = f"llm:fake/v1@{endpoint_key(broken.url)}"
    assert live.find_breaker(name).state == "open"
    assert len(broken.script.requests) == 3  # until its breaker opened
    assert live.find_breaker("llm:fake/v1").state == "closed"  # the model is fine
    assert recorder.of(FallbackUsed) == []  # no fallback to another model
    assert live.health() == {"status": "degraded", "refusing": [name]}
    ejected = REGISTRY.get_sample_value(
        "agentfleet_endpoint_ejected",
        {"dependency": "llm:fake/v1", "endpoint": endpoint_key(broken.url)},
    )
    assert ejected == 1


async def test_streams_fail_over_before_the_first_token(
    fakes: list[RunningFakeProvider], live: ResilienceRegistry, pool: ProviderPool
) -> None:
    first, second, _ = fakes
    first.script.fallback = FakeReply(status=529)
    second.script.fallback = FakeReply(text="streamed words")
    models = chain(live, pool, model("v1", first, second), attempts=1, threshold=100, **FAST)
    for _ in range(20):  # one attempt each: the failover happens within it
        items = [item async for item in models.stream(request())]
        assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "streamed words"
    assert len(second.script.requests) == 20
    assert len(first.script.requests) >= 1  # drawn first at times (p = 1/2 at the start)


async def test_a_version_gone_from_every_endpoint_falls_back_to_the_next_model(
    fakes: list[RunningFakeProvider],
    live: ResilienceRegistry,
    pool: ProviderPool,
    recorder: Recorder,
) -> None:
    primary_1, primary_2, backup = fakes
    gone = FakeReply(status=404, error_message="The model `v1` does not exist.")
    primary_1.script.fallback = primary_2.script.fallback = gone
    backup.script.fallback = FakeReply(text="from v2")
    before = fallbacks("notFound")
    models = chain(live, pool, model("v1", primary_1, primary_2), model("v2", backup), **FAST)
    assert text(await models.complete(request())) == "from v2"
    # Both endpoints were asked (the model may be missing on one server only), once each:
    # a 404 is not retried.
    assert [r.model for r in primary_1.script.requests] == ["v1"]
    assert [r.model for r in primary_2.script.requests] == ["v1"]
    assert [r.model for r in backup.script.requests] == ["v2"]
    [used] = recorder.of(FallbackUsed)
    assert (used.from_model, used.to_model, used.reason) == ("fake/v1", "fake/v2", "notFound")
    assert fallbacks("notFound") == before + 1


async def test_a_version_without_tool_support_falls_back_as_incompatible(
    fakes: list[RunningFakeProvider],
    live: ResilienceRegistry,
    pool: ProviderPool,
    recorder: Recorder,
) -> None:
    old, _, backup = fakes
    old.script.fallback = FakeReply(
        status=400, error_message="registry.ollama.ai/library/v1:latest does not support tools"
    )
    backup.script.fallback = FakeReply(text="from v2")
    before = fallbacks("incompatible")
    models = chain(live, pool, model("v1", old), model("v2", backup), **FAST)
    assert text(await models.complete(request(tools=True))) == "from v2"
    [used] = recorder.of(FallbackUsed)
    assert used.reason == "incompatible"
    assert fallbacks("incompatible") == before + 1


async def test_a_plain_bad_request_does_not_fall_back(
    fakes: list[RunningFakeProvider], live: ResilienceRegistry, pool: ProviderPool
) -> None:
    primary, _, backup = fakes
    primary.script.fallback = FakeReply(status=400, error_message="messages: too many images")
    models = chain(live, pool, model("v1", primary), model("v2", backup), **FAST)
    with pytest.raises(UpstreamBadRequestError):
        await models.complete(request())
    assert len(backup.script.requests) == 0


def test_model_endpoints_are_validated() -> None:
    with pytest.raises(ValidationError, match="endpoints"):
        ModelSpec(provider=ModelProviderName.OPENAI, name="m", endpoints=["vllm-0:8000"])
    with pytest.raises(ValidationError, match="listed twice"):
        ModelSpec(
            provider=ModelProviderName.OPENAI,
            name="m",
            endpoints=["http://vllm-0:8000/v1", "http://vllm-0:8000/v1/"],
        )
    spec = ModelSpec.model_validate(
        {"provider": "openai", "name": "m", "baseUrl": "http://a/v1", "endpoints": ["http://b/v1"]}
    )
    assert spec.model_dump(by_alias=True)["endpoints"] == ["http://b/v1"]
