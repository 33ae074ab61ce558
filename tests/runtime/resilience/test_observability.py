"""Traces (OpenTelemetry, in-memory exporter: GenAI spans per model call, tool call and
retry attempt) and JSON logs carrying the correlation ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.errors import UpstreamServerError
from agentfleet_runtime.observability import tracing
from agentfleet_runtime.observability.logging import configure_logging
from agentfleet_runtime.providers.fake import FakeReply
from agentfleet_runtime.resilience import Attempt, ResilienceRegistry
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider

from .conftest import category, policy
from .test_runtime import runtime


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)


async def test_spans_per_model_call_tool_call_and_attempt(
    fake_provider: RunningFakeProvider, demo_mcp_url: str, spans: InMemorySpanExporter
) -> None:
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_mcp_url)
    resilience = policy(llm=category(attempts=2, base_delay=0.01))
    async with runtime(fake_provider, resilience, [demo]) as rt:
        session = await rt.session()
        fake_provider.script.push(FakeReply(status=503))  # one retry of the first call
        fake_provider.script.push_tool_call("calculate", {"expression": "6*7"})
        fake_provider.script.push(FakeReply(text="42", input_tokens=30, output_tokens=2))
        assert (await rt.say(session, "6*7?")).json()["answer"]["content"] == "42"
    finished = spans.get_finished_spans()
    chats = [s for s in finished if s.name == "chat fake-model"]
    assert len(chats) == 2
    last = chats[-1].attributes or {}
    assert last["gen_ai.operation.name"] == "chat"
    assert last["gen_ai.provider.name"] == "fake"
    assert last["gen_ai.request.model"] == "fake-model"
    assert last["gen_ai.agent.name"] == "calc"
    assert last["gen_ai.usage.input_tokens"] == 30
    assert last["gen_ai.usage.output_tokens"] == 2
    assert last["gen_ai.response.finish_reasons"] == ("end_turn",)
    attempts = [s for s in finished if s.name == "attempt llm:fake/fake-model"]
    assert [(s.attributes or {})["agentfleet.attempt"] for s in attempts] == [1, 2, 1]
    assert (attempts[0].attributes or {})["error.type"] == "overloaded"
    assert all(
        s.parent is not None and s.parent.span_id in {c.context.span_id for c in chats}
        for s in attempts
    )
    (tool,) = [s for s in finished if s.name == "execute_tool calculate"]
    assert (tool.attributes or {})["gen_ai.tool.name"] == "calculate"
    assert (tool.attributes or {})["gen_ai.operation.name"] == "execute_tool"
    (mcp_attempt,) = [s for s in finished if s.name == "attempt mcp:demo"]
    assert mcp_attempt.parent is not None
    assert mcp_attempt.parent.span_id == tool.context.span_id


async def test_the_turn_span_is_the_parent_of_model_tool_and_attempt_spans(
    fake_provider: RunningFakeProvider, demo_mcp_url: str, spans: InMemorySpanExporter
) -> None:
    """One trace per turn: ``invoke_agent calc`` → ``chat`` (one per model call) →
    ``attempt llm:…`` (one per attempt, the retried one included), and ``invoke_agent``
    → ``execute_tool`` → ``attempt mcp:…``."""
    demo = ResolvedMCPServer(name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_mcp_url)
    resilience = policy(llm=category(attempts=2, base_delay=0.01))
    async with runtime(fake_provider, resilience, [demo]) as rt:
        session = await rt.session()
        fake_provider.script.push(FakeReply(status=503))  # the first model call is retried
        fake_provider.script.push_tool_call("calculate", {"expression": "6*7"})
        fake_provider.script.push(FakeReply(text="42", input_tokens=30, output_tokens=2))
        answer = (await rt.say(session, "6*7?")).json()
    finished = spans.get_finished_spans()
    (turn,) = [s for s in finished if s.name == "invoke_agent calc"]
    attributes = turn.attributes or {}
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "calc"
    assert attributes["gen_ai.conversation.id"] == session
    assert attributes["gen_ai.request.model"] == "fake-model"
    assert attributes["agentfleet.turn.id"] == answer["turn_id"]
    assert attributes["gen_ai.usage.input_tokens"] == answer["usage"]["input_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == answer["usage"]["output_tokens"]
    assert "error.type" not in attributes

    def parent(span: object) -> int | None:
        ref = getattr(span, "parent", None)
        return ref.span_id if ref is not None else None

    in_turn = [s for s in finished if s.context.trace_id == turn.context.trace_id]
    chats = [s for s in in_turn if s.name == "chat fake-model"]
    (tool,) = [s for s in in_turn if s.name == "execute_tool calculate"]
    assert len(chats) == 2
    assert {parent(s) for s in [*chats, tool]} == {turn.context.span_id}
    llm_attempts = [s for s in in_turn if s.name == "attempt llm:fake/fake-model"]
    assert [(s.attributes or {})["agentfleet.attempt"] for s in llm_attempts] == [1, 2, 1]
    assert [parent(s) for s in llm_attempts] == [
        chats[0].context.span_id,
        chats[0].context.span_id,
        chats[1].context.span_id,
    ]
    (mcp_attempt,) = [s for s in in_turn if s.name == "attempt mcp:demo"]
    assert parent(mcp_attempt) == tool.context.span_id
    assert turn.parent is None or turn.parent.span_id not in {s.context.span_id for s in in_turn}


async def test_a_failed_turn_span_says_why(
    fake_provider: RunningFakeProvider, spans: InMemorySpanExporter
) -> None:
    async with runtime(fake_provider, policy(llm=category(attempts=1))) as rt:
        session = await rt.session()
        fake_provider.script.push_error(401, message="invalid key")
        assert (await rt.say(session, "hi")).status_code == 502
    (turn,) = [s for s in spans.get_finished_spans() if s.name == "invoke_agent calc"]
    assert (turn.attributes or {})["error.type"] == "auth"
    assert turn.status.status_code.name == "ERROR"


async def test_json_logs_carry_the_correlation_ids(
    capsys: pytest.CaptureFixture[str], registry: ResilienceRegistry
) -> None:
    configure_logging("INFO", "json")
    try:
        pipeline = registry.pipeline("x", "http", policy(http=category(attempts=2)))
        failures = [UpstreamServerError("boom", dependency="x")]

        async def call(_attempt: Attempt) -> str:
            if failures:
                raise failures.pop()
            return "ok"

        with structlog.contextvars.bound_contextvars(request_id="req-1", turn_id="turn_1"):
            assert await pipeline.execute(call) == "ok"
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    (retry,) = [line for line in lines if line.get("resilience_event") == "RetryScheduled"]
    assert retry["event"].startswith("retry scheduled: x attempt 1 failed (serverError)")
    assert retry["request_id"] == "req-1"
    assert retry["turn_id"] == "turn_1"
    assert retry["dependency"] == "x"
    assert retry["level"] == "warning"


def test_otlp_export_is_configured_from_settings() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from agentfleet_runtime.observability.settings import ObservabilitySettings

    assert tracing.configure_tracing(ObservabilitySettings()) is None
    assert not tracing.enabled()
    provider = tracing.configure_tracing(
        ObservabilitySettings(tracing=True, otlp_endpoint="http://127.0.0.1:4318")
    )
    try:
        assert provider is not None
        assert tracing.enabled()
        processors = provider._active_span_processor._span_processors
        exporter = processors[0].span_exporter  # type: ignore[attr-defined]
        assert isinstance(exporter, OTLPSpanExporter)
        assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    finally:
        tracing.use_tracer_provider(None)
        if provider is not None:
            provider.shutdown()
