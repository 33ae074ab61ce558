"""agentfleet's fake model provider: a wire-compatible OpenAI + Anthropic HTTP server,
scriptable per test (:class:`FakeScript`), with a deterministic offline model for when
nothing is scripted (what ``agentfleet dev`` answers with when no API key is set)."""

from agentfleet_runtime.providers.fake.app import create_fake_provider_app
from agentfleet_runtime.providers.fake.offline import OfflineAnswer, offline_answer
from agentfleet_runtime.providers.fake.script import (
    FakeReply,
    FakeScript,
    FakeToolCall,
    RecordedRequest,
    WireFormat,
)

__all__ = [
    "FakeReply",
    "FakeScript",
    "FakeToolCall",
    "OfflineAnswer",
    "RecordedRequest",
    "WireFormat",
    "create_fake_provider_app",
    "offline_answer",
]
