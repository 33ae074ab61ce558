"""The ``Agent`` custom resource: an LLM agent with MCP tools, run by the agentfleet runtime."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

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
)


class ModelProviderName(StrEnum):
    """Which SDK talks to the model.

    ``openai`` also covers every OpenAI-compatible server (vLLM, Ollama, LiteLLM...) through
    ``baseUrl``. ``fake`` is agentfleet's own offline provider, for development and tests.
    """

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    FAKE = "fake"


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
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key. Never put a key in the spec itself.",
    )
    max_tokens: Annotated[int, Field(default=1024, ge=1, le=200_000)]
    temperature: Annotated[float | None, Field(default=None, ge=0.0, le=2.0)]
    timeout_seconds: Annotated[
        float, Field(default=60.0, gt=0, le=3600, description="Per-request timeout.")
    ]


class AgentToolRef(CamelModel):
    """An MCP server whose tools the agent may call."""

    mcp_server_ref: LocalObjectReference = Field(description="The MCPServer in this namespace.")
    allowed_tools: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None,
        description="Only these tools are offered to the model; all of the server's if unset.",
    )


class ResourceList(CamelModel):
    cpu: Annotated[str | None, Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?m?$")]
    memory: Annotated[
        str | None, Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    ]


class ResourceRequirements(CamelModel):
    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="100m", memory="256Mi"))
    limits: ResourceList = Field(default_factory=lambda: ResourceList(memory="1Gi"))


class AutoscalingSpec(CamelModel):
    """A HorizontalPodAutoscaler for the agent's Deployment."""

    enabled: bool = False
    min_replicas: Annotated[int, Field(default=1, ge=1, le=1000)]
    max_replicas: Annotated[int, Field(default=5, ge=1, le=1000)]
    target_cpu_utilization_percentage: Annotated[int, Field(default=70, ge=1, le=100)]

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be <= maxReplicas")
        return self


class DisruptionBudgetSpec(CamelModel):
    """A PodDisruptionBudget for the agent's pods."""

    enabled: bool = False
    min_available: Annotated[int, Field(default=1, ge=0)]


class NetworkPolicySpec(CamelModel):
    """A NetworkPolicy that admits traffic to the agent's pods only from these namespaces
    (and the agent's own)."""

    enabled: bool = False
    allowed_namespaces: list[ObjectName] = Field(default_factory=list)


class DeploymentSpec(CamelModel):
    """How the operator runs the agent's runtime pods."""

    replicas: Annotated[int, Field(default=1, ge=0, le=1000)]
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

    description: Annotated[str, Field(default="", max_length=1024)]
    system_prompt: Annotated[str, Field(default="You are a helpful assistant.", max_length=100_000)]
    model: ModelSpec
    fallback_models: list[ModelSpec] = Field(
        default_factory=list,
        description="Tried in order when the primary model is unavailable.",
        max_length=5,
    )
    tools: list[AgentToolRef] = Field(default_factory=list, max_length=32)
    max_steps: Annotated[
        int,
        Field(
            default=8,
            ge=1,
            le=100,
            description="Most model calls in one turn; the turn ends with an error past it.",
        ),
    ]
    resilience_policy_ref: LocalObjectReference | None = None
    deployment: DeploymentSpec = Field(default_factory=DeploymentSpec)


class AgentStatus(ResourceStatus):
    replicas: Annotated[int | None, Field(default=None, ge=0)]
    ready_replicas: Annotated[int | None, Field(default=None, ge=0)]
    endpoint: str | None = Field(default=None, description="In-cluster URL of the agent's API.")
    config_hash: str | None = None


class Agent(Resource):
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
