"""``AGENTFLEET_OBSERVABILITY__*``: traces and cost estimation."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class ObservabilitySettings(BaseModel):
    #: Record OpenTelemetry traces. Spans are exported by OTLP/HTTP when
    #: ``otlp_endpoint`` (or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``) is set.
    tracing: bool = False
    #: e.g. ``http://otel-collector:4318`` (``/v1/traces`` is appended).
    otlp_endpoint: str | None = None
    #: Fraction of traces sampled (parent-based).
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    service_name: str = "agentfleet-runtime"
    #: Prices per model name (over the built-in table), for ``agentfleet_llm_cost_usd_total``.
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)
