"""The ``ResiliencePolicy`` custom resource: retries, timeouts, breakers, rate limits,
retry budgets and fallbacks per *service category*.

The runtime applies one pipeline per dependency built from these options; the operator
also renders the ``meshRetries`` part into Istio/Linkerd objects (never both a mesh retry
and an in-process retry for the same hop: see docs/resilience.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from agentfleet_crds.v1alpha1.common import (
    AGE_COLUMN,
    READY_COLUMN,
    CamelModel,
    PrinterColumn,
    Resource,
    ResourceStatus,
    cel_rules,
)


class ServiceCategory(StrEnum):
    """The kinds of dependency a policy configures separately."""

    LLM = "llm"
    DATABASE = "database"
    HTTP = "http"
    STORAGE = "storage"
    QUEUE = "queue"


class ErrorClass(StrEnum):
    """The retryable classes of the runtime's error hierarchy."""

    RATE_LIMITED = "rateLimited"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "serverError"


class RetryOptions(CamelModel):
    """Retries with exponential backoff: delay n is ``baseDelaySeconds * multiplier**n``,
    capped at ``maxDelaySeconds``, with jitter."""

    # The pydantic twin of this rule is ResiliencePolicySpec._delays_ordered.
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "self.baseDelaySeconds <= self.maxDelaySeconds",
                "message": "baseDelaySeconds must be <= maxDelaySeconds",
                "fieldPath": ".baseDelaySeconds",
            }
        )
    )

    enabled: bool = True
    max_attempts: Annotated[int, Field(default=3, ge=1, le=10, description="Including the first.")]
    base_delay_seconds: Annotated[
        float, Field(default=0.5, ge=0, le=60, description="Delay before the first retry.")
    ]
    multiplier: Annotated[
        float, Field(default=2.0, ge=1, le=10, description="Growth of the delay per retry.")
    ]
    max_delay_seconds: Annotated[
        float, Field(default=30.0, ge=0, le=600, description="Cap on one delay.")
    ]
    jitter: Literal["full", "equal", "none"] = Field(
        default="full", description="How delays are randomised."
    )
    retry_on: list[ErrorClass] = Field(
        default_factory=lambda: [
            ErrorClass.RATE_LIMITED,
            ErrorClass.TIMEOUT,
            ErrorClass.CONNECTION,
            ErrorClass.OVERLOADED,
            ErrorClass.SERVER_ERROR,
        ],
        max_length=16,
        description="The error classes that are retried.",
    )
    timeout_multiplier: Annotated[
        float,
        Field(
            default=1.5,
            ge=1,
            le=10,
            description="Each retry after a timeout gets this much longer.",
        ),
    ]


class CircuitBreakerOptions(CamelModel):
    """Stop calling a failing dependency for a while (closed → open → half-open)."""

    enabled: bool = True
    failure_threshold: Annotated[
        int, Field(default=5, ge=1, le=1000, description="Consecutive failures that open it.")
    ]
    recovery_timeout_seconds: Annotated[
        float, Field(default=30.0, ge=1, le=3600, description="How long it stays open.")
    ]
    half_open_max_calls: Annotated[
        int, Field(default=1, ge=1, le=100, description="Trial calls while half-open.")
    ]


class RateLimitOptions(CamelModel):
    """Client-side rate limits; unlimited when unset."""

    requests_per_minute: Annotated[int | None, Field(default=None, ge=1)]
    tokens_per_minute: Annotated[
        int | None, Field(default=None, ge=1, description="Model tokens (LLM category only).")
    ]


class RetryBudgetOptions(CamelModel):
    """Retries may be at most ``ratio`` of recent calls (plus a floor), per dependency."""

    enabled: bool = True
    ratio: Annotated[float, Field(default=0.2, ge=0, le=1)]
    min_retries_per_second: Annotated[float, Field(default=1.0, ge=0)]
    window_seconds: Annotated[float, Field(default=10.0, gt=0, le=3600)]


class BulkheadOptions(CamelModel):
    """Bound on concurrent calls; callers past it wait, then are refused."""

    max_concurrent: Annotated[int, Field(default=32, ge=1, le=100_000)]
    max_wait_seconds: Annotated[
        float, Field(default=5.0, ge=0, le=600, description="How long a caller waits for a slot.")
    ]


class CategoryPolicy(CamelModel):
    """The resilience options for one service category."""

    timeout_seconds: Annotated[
        float, Field(default=30.0, gt=0, le=3600, description="Deadline of one attempt.")
    ]
    retry: RetryOptions = Field(default_factory=RetryOptions)
    circuit_breaker: CircuitBreakerOptions = Field(default_factory=CircuitBreakerOptions)
    rate_limit: RateLimitOptions = Field(default_factory=RateLimitOptions)
    retry_budget: RetryBudgetOptions = Field(default_factory=RetryBudgetOptions)
    bulkhead: BulkheadOptions = Field(default_factory=BulkheadOptions)
    fallback_enabled: bool = Field(
        default=True, description="Use the fallback (e.g. the agent's fallbackModels)."
    )


class MeshRetryMode(StrEnum):
    """Where a hop is retried. ``inProcess``: the runtime retries, the mesh must not.
    ``mesh``: the mesh retries (idempotent, non-streaming routes only) and the runtime does
    not. Never both: retries multiply."""

    IN_PROCESS = "inProcess"
    MESH = "mesh"


class MeshOptions(CamelModel):
    """What the operator renders into Istio/Linkerd objects when a mesh is present."""

    retries: MeshRetryMode = MeshRetryMode.IN_PROCESS
    attempts: Annotated[int, Field(default=2, ge=1, le=10)]
    per_try_timeout_seconds: Annotated[float, Field(default=10.0, gt=0, le=600)]
    retry_on: Annotated[str, Field(default="5xx,reset,connect-failure", max_length=256)]
    consecutive_errors: Annotated[
        int, Field(default=5, ge=1, le=1000, description="Outlier detection: ejection threshold.")
    ]
    base_ejection_seconds: Annotated[float, Field(default=30.0, ge=1, le=3600)]


class ResiliencePolicySpec(CamelModel):
    """Resilience options per service category, and for the service mesh."""

    llm: CategoryPolicy = Field(
        default_factory=lambda: CategoryPolicy(
            timeout_seconds=120.0, retry=RetryOptions(base_delay_seconds=1.0)
        )
    )
    database: CategoryPolicy = Field(
        default_factory=lambda: CategoryPolicy(
            timeout_seconds=2.0, retry=RetryOptions(base_delay_seconds=0.05, max_delay_seconds=1.0)
        )
    )
    http: CategoryPolicy = Field(default_factory=CategoryPolicy)
    storage: CategoryPolicy = Field(default_factory=CategoryPolicy)
    queue: CategoryPolicy = Field(default_factory=CategoryPolicy)
    mesh: MeshOptions = Field(default_factory=MeshOptions)

    @model_validator(mode="after")
    def _delays_ordered(self) -> ResiliencePolicySpec:
        for category in ServiceCategory:
            retry = getattr(self, category.value).retry
            if retry.base_delay_seconds > retry.max_delay_seconds:
                raise ValueError(
                    f"{category.value}.retry.baseDelaySeconds must be <= maxDelaySeconds"
                )
        return self


class ResiliencePolicyStatus(ResourceStatus):
    """What the operator observed of a ResiliencePolicy."""

    agents: Annotated[
        int | None, Field(default=None, ge=0, description="Agents that reference it.")
    ]
    mesh: str | None = Field(
        default=None,
        description="The service mesh its mesh options are rendered for (istio, linkerd, none).",
    )


class ResiliencePolicy(Resource):
    """Retries, timeouts, circuit breakers, rate limits, retry budgets, bulkheads and
    fallbacks per service category, referenced by Agents."""

    KIND: ClassVar[str] = "ResiliencePolicy"
    PLURAL: ClassVar[str] = "resiliencepolicies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rp", "respol")
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="LLM-Attempts", type="integer", json_path=".spec.llm.retry.maxAttempts"),
        PrinterColumn(name="Mesh-Retries", type="string", json_path=".spec.mesh.retries"),
        PrinterColumn(name="Agents", type="integer", json_path=".status.agents"),
        READY_COLUMN,
        AGE_COLUMN,
    )

    kind: Literal["ResiliencePolicy"] = "ResiliencePolicy"
    spec: ResiliencePolicySpec = Field(default_factory=ResiliencePolicySpec)
    status: ResiliencePolicyStatus | None = None
