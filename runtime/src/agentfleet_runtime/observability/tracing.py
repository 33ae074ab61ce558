"""OpenTelemetry traces: spans per model call (GenAI semantic conventions: ``chat
{model}``), per tool call (``execute_tool {tool}``) and per attempt of the resilience
pipeline (``attempt {dependency}``), under the turn's span (``invoke_agent {agent}``).

Off unless configured (``AGENTFLEET_OBSERVABILITY__TRACING=true``): when off, no span
object is created at all (the hot path pays one boolean test). Spans are exported by
OTLP/HTTP when an endpoint is configured; tests install an in-memory exporter with
:func:`use_tracer_provider`. The runtime keeps its own provider (not the process-global
one) so tests and embedding applications do not fight over the global.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agentfleet_runtime import __version__
from agentfleet_runtime.observability.settings import ObservabilitySettings

__all__ = [
    "configure_tracing",
    "enabled",
    "invoke_agent_span",
    "record_error",
    "shutdown_tracing",
    "span",
    "start_span",
    "use_tracer_provider",
]

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Record spans with ``provider`` (``None``: tracing off)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("agentfleet_runtime", __version__) if provider else None


def configure_tracing(
    settings: ObservabilitySettings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The tracer provider the settings ask for (installed), or ``None`` when off."""
    endpoint = settings.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not settings.tracing and exporter is None:
        use_tracer_provider(None)
        return None
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is None and endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        log.info("tracing: OTLP export to %s", endpoint)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    use_tracer_provider(provider)
    return provider


def shutdown_tracing() -> None:
    provider = _provider
    use_tracer_provider(None)
    if provider is not None:
        provider.shutdown()


@contextlib.contextmanager
def span(
    name: str, attributes: dict[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span | None]:
    """A span (current for the block) when tracing is on, else ``None``. An exception
    leaving the block is recorded with ``error.type``."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            record_error(current, exc)
            raise


def start_span(
    name: str, attributes: dict[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Span | None:
    """A started span that is *not* made current (the caller ends it), or ``None`` when
    tracing is off. For async generators, whose context is the consumer's."""
    tracer = _tracer
    if tracer is None:
        return None
    return tracer.start_span(name, kind=kind, attributes=attributes)


def record_error(current: Span | None, exc: BaseException) -> None:
    if current is None or not current.is_recording():
        return
    from agentfleet_runtime.resilience.classify import error_class

    current.set_attribute("error.type", error_class(exc))
    current.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
    if isinstance(exc, Exception):
        current.record_exception(exc)


def invoke_agent_span[F: Callable[..., Awaitable[Any]]](run_turn: F) -> F:
    """Decorate the method that runs a turn — ``(self, session, agent, turn_id, ...)`` —
    with the turn's span ``invoke_agent {agent}`` (GenAI semantic conventions): the parent
    of its ``chat`` (model calls), ``execute_tool`` and ``attempt`` spans. Attributes:
    ``gen_ai.operation.name``, ``gen_ai.agent.name``, ``gen_ai.conversation.id`` (the
    session), ``gen_ai.provider.name``/``gen_ai.request.model`` (the agent's model), the
    turn's usage totals, ``error.type`` when it fails. Tracing off: a plain call."""

    @functools.wraps(run_turn)
    async def traced(
        self: Any, session: Any, agent: Any, turn_id: str, *args: Any, **kw: Any
    ) -> Any:
        tracer = _tracer
        if tracer is None:
            return await run_turn(self, session, agent, turn_id, *args, **kw)
        model = agent.config.spec.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent.name,
            "gen_ai.conversation.id": session.id,
            "gen_ai.provider.name": str(model.provider.value),
            "gen_ai.request.model": model.name,
            "agentfleet.turn.id": turn_id,
            "agentfleet.turn.attempt": int(kw.get("attempt", 1)),
            "agentfleet.tenant": session.tenant,
        }
        with tracer.start_as_current_span(
            f"invoke_agent {agent.name}",
            kind=SpanKind.INTERNAL,  # the agent runs in this process
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            try:
                result = await run_turn(self, session, agent, turn_id, *args, **kw)
            except BaseException as exc:
                record_error(current, exc)
                raise
            usage = getattr(result, "usage", None)
            if usage is not None:
                current.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
                current.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            degraded = getattr(result, "degraded", None)
            if degraded:
                current.set_attribute("agentfleet.degraded", str(degraded.get("reason", "")))
            return result

    return cast(F, traced)
