"""Fixtures: the fake provider over real HTTP, and both adapters pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentfleet_runtime.providers.anthropic import AnthropicProvider
from agentfleet_runtime.providers.base import ModelProvider
from agentfleet_runtime.providers.openai import OpenAIProvider
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider, running_fake_provider


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with running_fake_provider(prefix="/fake-llm") as running:
        yield running


def make_provider(wire: str, fake: RunningFakeProvider) -> ModelProvider:
    if wire == "openai":
        return OpenAIProvider(api_key="sk-test", base_url=fake.openai_base_url)
    return AnthropicProvider(api_key="sk-ant-test", base_url=fake.anthropic_base_url)


@pytest.fixture(params=["openai", "anthropic"])
async def provider(
    request: pytest.FixtureRequest, fake: RunningFakeProvider
) -> AsyncIterator[ModelProvider]:
    """Each adapter in turn, through its real SDK, against the fake provider."""
    adapter = make_provider(request.param, fake)
    yield adapter
    await adapter.aclose()
