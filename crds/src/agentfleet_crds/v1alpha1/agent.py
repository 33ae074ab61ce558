"""The ``Agent`` custom resource: an LLM agent with MCP tools, run by the agentfleet runtime."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from agentfleet_crds.toolschema import SCHEMA_HASH_PATTERN
from agentfleet_crds.v1alpha1.common import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    LocalObjectReference,
    ObjectName,
    PrinterColumn,
    Resource,
    ResourceStatus,
    SecretKeyRef,
    cel_rules,
)


class ModelProviderName(StrEnum):
    """Which SDK talks to the model.

    ``openai`` also covers every OpenAI-compatible server (vLLM, Ollama, LiteLLM...) through
    ``baseUrl``. ``fake`` is agentfleet's own offline provider, for development and tests.
    """

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    FAKE = "fake"


#: Most extra endpoints of a model or an MCP server (``endpoints``).
MAX_ENDPOINTS = 8


#: An endpoint URL: http(s), then a host (the schema's pattern; parsed again below).
ENDPOINT_PATTERN = r"^https?://[^/?#@\s]+(/\S*)?$"
#: One URL of an ``endpoints`` list (a model's or an MCP server's replicas).
EndpointUrl = Annotated[str, Field(pattern=ENDPOINT_PATTERN, max_length=2048)]


def distinct_endpoints(endpoints: list[str], field: str = "endpoints") -> list[str]:
    """``endpoints`` unless one is not a URL with a host, or is listed twice (trailing
    slashes ignored)."""
    seen: set[str] = set()
    for url in endpoints:
        try:
            parts = urlsplit(url)
            host, _ = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"{field}: {url!r} is not a valid URL ({exc})") from None
        if not host:
            raise ValueError(f"{field}: {url!r} has no host")
        key = url.rstrip("/")
        if key in seen:
            raise ValueError(f"endpoints: {url} is listed twice")
        seen.add(key)
    return endpoints


class ModelSpec(CamelModel):
    """The model an agent calls."""

    provider: ModelProviderName = Field(description="Which API/SDK to use.")
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            description="The provider's model id, e.g. claude-sonnet-4-5 or gpt-4.1-mini.",
        ),
    ]
    base_url: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^https?://",
            max_length=2048,
            description="API base URL; for OpenAI-compatible servers such as vLLM or Ollama.",
        ),
    ]
    endpoints: list[EndpointUrl] = Field(
        default_factory=list,
        max_length=MAX_ENDPOINTS,
        json_schema_extra={"uniqueItems": True},
        description="More base URLs of equivalent servers of this model (replicas of an "
        "OpenAI- or Anthropic-compatible API). With baseUrl (or the provider's default URL) "
        "they form the set the runtime balances calls over: healthy endpoints weighted by "
        "recent latency and errors; one that keeps failing is ejected by its own circuit "
        "breaker until a trial call succeeds.",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key. Never put a key in the spec itself.",
    )
    max_tokens: Annotated[
        int, Field(default=1024, ge=1, le=200_000, description="Most tokens in one reply.")
    ]
    temperature: Annotated[
        float | None,
        Field(
            default=None,
            ge=0.0,
            le=2.0,
            description="Sampling temperature; the model's own default if unset.",
        ),
    ]
    timeout_seconds: Annotated[
        float, Field(default=60.0, gt=0, le=3600, description="Per-request timeout.")
    ]

    @field_validator("endpoints")
    @classmethod
    def _distinct_endpoints(cls, endpoints: list[str]) -> list[str]:
        return distinct_endpoints(endpoints)

    @field_validator("base_url")
    @classmethod
    def _base_url_has_a_host(cls, url: str | None) -> str | None:
        if url is not None:
            distinct_endpoints([url], "baseUrl")
        return url


class ToolSchemaPin(CamelModel):
    """A tool and the exact input schema it must have."""

    name: Annotated[str, Field(min_length=1, max_length=128, description="The tool's name.")]
    input_schema_hash: Annotated[
        str,
        Field(
            pattern=SCHEMA_HASH_PATTERN,
            description="sha256:<hex> of the tool's inputSchema as canonical JSON (from the "
            "MCPServer's status.toolSchemas or GET /api/v1/mcp-servers/{name}/tools).",
        ),
    ]


class AgentToolRef(CamelModel):
    """An MCP server whose tools the agent may call."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "!has(self.allowedTools) || !has(self.pinnedTools) || "
                "self.pinnedTools.all(p, p.name in self.allowedTools)",
                "message": "pinnedTools must name tools listed in allowedTools",
                "fieldPath": ".pinnedTools",
            }
        )
    )

    mcp_server_ref: LocalObjectReference = Field(description="The MCPServer in this namespace.")
    allowed_tools: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None,
        max_length=256,
        description="Only these tools are offered to the model; all of the server's if unset.",
    )
    pinned_tools: list[ToolSchemaPin] | None = Field(
        default=None,
        max_length=128,
        description="Tools pinned to an exact input schema. A pinned tool the server no "
        "longer lists, or lists with another schema (any change, additive ones included), "
        "is withheld from the model and reported (health, metric) instead of being called "
        "with arguments it may no longer accept.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    @model_validator(mode="after")
    def _pins_allowed(self) -> AgentToolRef:
        if self.pinned_tools and self.allowed_tools is not None:
            stray = [p.name for p in self.pinned_tools if p.name not in self.allowed_tools]
            if stray:
                raise ValueError(
                    f"pinnedTools must name tools listed in allowedTools: {', '.join(stray)}"
                )
        if self.pinned_tools:
            names = [p.name for p in self.pinned_tools]
            if len(set(names)) != len(names):
                raise ValueError("pinnedTools names a tool twice")
        return self

    def pins(self) -> dict[str, str] | None:
        """Tool name → pinned input-schema hash (``None``: nothing pinned)."""
        if not self.pinned_tools:
            return None
        return {p.name: p.input_schema_hash for p in self.pinned_tools}


class ResourceList(CamelModel):
    """CPU and memory quantities, e.g. ``cpu: 250m``, ``memory: 512Mi``."""

    cpu: Annotated[
        str | None,
        Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?m?$", description="CPU, e.g. 500m or 2."),
    ]
    memory: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$",
            description="Memory, e.g. 256Mi or 1Gi.",
        ),
    ]


class ResourceRequirements(CamelModel):
    """Compute requests and limits of a container."""

    requests: ResourceList = Field(
        default_factory=lambda: ResourceList(cpu="100m", memory="256Mi"),
        description="What the scheduler reserves.",
    )
    limits: ResourceList = Field(
        default_factory=lambda: ResourceList(memory="1Gi"), description="The most it may use."
    )


class AutoscalingSpec(CamelModel):
    """A HorizontalPodAutoscaler for the agent's Deployment."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must be <= maxReplicas",
                "fieldPath": ".minReplicas",
            }
        )
    )

    enabled: bool = Field(default=False, description="Create the HorizontalPodAutoscaler.")
    min_replicas: Annotated[int, Field(default=1, ge=1, le=1000)]
    max_replicas: Annotated[int, Field(default=5, ge=1, le=1000)]
    target_cpu_utilization_percentage: Annotated[
        int, Field(default=70, ge=1, le=100, description="Average CPU use the HPA aims for.")
    ]

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be <= maxReplicas")
        return self


class DisruptionBudgetSpec(CamelModel):
    """A PodDisruptionBudget for the agent's pods."""

    enabled: bool = Field(default=False, description="Create the PodDisruptionBudget.")
    min_available: Annotated[
        int, Field(default=1, ge=0, description="Pods that must stay up during a disruption.")
    ]


class NetworkPolicySpec(CamelModel):
    """A NetworkPolicy that admits traffic to the agent's pods only from these namespaces
    (and the agent's own)."""

    enabled: bool = Field(default=False, description="Create the NetworkPolicy.")
    allowed_namespaces: list[ObjectName] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces whose pods may reach the agent's API.",
    )


class DeploymentSpec(CamelModel):
    """How the operator runs the agent's runtime pods."""

    replicas: Annotated[
        int, Field(default=1, ge=0, le=1000, description="Pods when autoscaling is off.")
    ]
    image: Annotated[
        str | None,
        Field(
            default=None,
            max_length=512,
            description="Runtime image; the operator's default if unset.",
        ),
    ]
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    pod_disruption_budget: DisruptionBudgetSpec = Field(default_factory=DisruptionBudgetSpec)
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


class AgentSpec(CamelModel):
    """What an agent is: its model, its instructions, its tools, its limits."""

    description: Annotated[
        str, Field(default="", max_length=1024, description="What the agent is for.")
    ]
    system_prompt: Annotated[
        str,
        Field(
            default="You are a helpful assistant.",
            max_length=100_000,
            description="The instructions the model gets before every conversation.",
        ),
    ]
    model: ModelSpec = Field(description="The primary model.")
    fallback_models: list[ModelSpec] = Field(
        default_factory=list,
        description="Tried in order when the primary model is unavailable.",
        max_length=5,
    )
    tools: list[AgentToolRef] = Field(
        default_factory=list, max_length=32, description="MCP servers whose tools it may call."
    )
    max_steps: Annotated[
        int,
        Field(
            default=8,
            ge=1,
            le=100,
            description="Most model calls in one turn; the turn ends with an error past it.",
        ),
    ]
    resilience_policy_ref: LocalObjectReference | None = Field(
        default=None,
        description="The ResiliencePolicy in this namespace; the built-in defaults if unset.",
    )
    deployment: DeploymentSpec = Field(
        default_factory=DeploymentSpec, description="How the operator runs it in the cluster."
    )


class AgentStatus(ResourceStatus):
    """What the operator observed of an Agent."""

    replicas: Annotated[int | None, Field(default=None, ge=0, description="Pods running.")]
    ready_replicas: Annotated[int | None, Field(default=None, ge=0, description="Pods ready.")]
    endpoint: str | None = Field(default=None, description="In-cluster URL of the agent's API.")
    config_hash: str | None = Field(
        default=None, description="Hash of the rendered runtime config the pods run."
    )


class Agent(Resource):
    """An LLM agent with MCP tools, run by the agentfleet runtime as a Deployment."""

    KIND: ClassVar[str] = "Agent"
    PLURAL: ClassVar[str] = "agents"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ag",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="Provider", type="string", json_path=".spec.model.provider"),
        PrinterColumn(name="Model", type="string", json_path=".spec.model.name"),
        READY_COLUMN,
        PrinterColumn(name="Replicas", type="integer", json_path=".status.readyReplicas"),
        REASON_COLUMN,
        AGE_COLUMN,
    )

    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec
    status: AgentStatus | None = None
