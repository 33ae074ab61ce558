"""The ``MCPServer`` custom resource: a Model Context Protocol server agents call tools on.

Exactly one of three shapes:

* ``url`` — a remote server the runtime reaches over streamable HTTP;
* ``hosted`` — the operator runs the server's image as a Deployment + Service (a stdio-only
  server is bridged to streamable HTTP);
* ``stdio`` — the runtime starts the server as a subprocess of its own (local development,
  or tools packaged into the runtime image).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from agentfleet_crds.v1alpha1.agent import (
    MAX_ENDPOINTS,
    EndpointUrl,
    ResourceRequirements,
    distinct_endpoints,
)
from agentfleet_crds.v1alpha1.common import (
    AGE_COLUMN,
    DNS_1035_LABEL,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    LocalObjectReference,
    ObjectMeta,
    PrinterColumn,
    Resource,
    ResourceStatus,
    SecretKeyRef,
    cel_rules,
)


class MCPTransport(StrEnum):
    """How the server speaks MCP."""

    STREAMABLE_HTTP = "streamable-http"
    STDIO = "stdio"


EnvName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class EnvVar(CamelModel):
    """An environment variable: a literal value or a secret key, not both."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "has(self.value) != has(self.secretKeyRef)",
                "message": "exactly one of value or secretKeyRef must be set",
            }
        )
    )

    name: EnvName = Field(description="The variable's name.")
    value: str | None = Field(default=None, description="A literal value.")
    secret_key_ref: SecretKeyRef | None = Field(
        default=None, description="A Secret key holding the value."
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.secret_key_ref is None):
            raise ValueError("exactly one of value or secretKeyRef must be set")
        return self


class HeaderFromSecret(CamelModel):
    """An HTTP header sent to a remote server, its value read from a Secret."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            pattern=r"^[A-Za-z0-9-]+$",
            description="The header, e.g. Authorization.",
        ),
    ]
    secret_key_ref: SecretKeyRef = Field(description="The Secret key holding its value.")


class StdioSpec(CamelModel):
    """A server the runtime starts as a subprocess speaking MCP over stdin/stdout."""

    command: Annotated[
        str, Field(min_length=1, max_length=1024, description="The executable to start.")
    ]
    args: list[str] = Field(default_factory=list, max_length=256, description="Its arguments.")
    env: list[EnvVar] = Field(
        default_factory=list, max_length=256, description="Extra environment variables."
    )


class HostedSpec(CamelModel):
    """A server the operator runs as a Deployment + Service."""

    image: Annotated[
        str, Field(min_length=1, max_length=512, description="The server's container image.")
    ]
    transport: MCPTransport = Field(
        default=MCPTransport.STREAMABLE_HTTP,
        description="What the image speaks; stdio servers are bridged to streamable HTTP.",
    )
    command: list[str] = Field(
        default_factory=list, max_length=64, description="Overrides the image's entrypoint."
    )
    args: list[str] = Field(
        default_factory=list, max_length=256, description="Overrides the image's arguments."
    )
    port: Annotated[
        int, Field(default=8080, ge=1, le=65535, description="The port the server listens on.")
    ]
    path: Annotated[
        str,
        Field(
            default="/mcp",
            pattern=r"^/",
            max_length=1024,
            description="The streamable-HTTP endpoint's path.",
        ),
    ]
    replicas: Annotated[int, Field(default=1, ge=0, le=100)]
    env: list[EnvVar] = Field(
        default_factory=list, max_length=256, description="Environment variables."
    )
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class MCPTimeouts(CamelModel):
    """Bounds on talking to the server."""

    connect_seconds: Annotated[
        float, Field(default=10.0, gt=0, le=300, description="Bound on connecting.")
    ]
    call_seconds: Annotated[
        float, Field(default=60.0, gt=0, le=3600, description="Bound on one tool call.")
    ]
    discovery_seconds: Annotated[
        float,
        Field(default=10.0, gt=0, le=300, description="Bound on listing the server's tools."),
    ]


class MCPServerSpec(CamelModel):
    """Where the server is: exactly one of ``url``, ``hosted`` or ``stdio``."""

    description: Annotated[
        str, Field(default="", max_length=1024, description="What the server's tools do.")
    ]
    url: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^https?://",
            max_length=2048,
            description="A remote server (streamable HTTP); may be a load balancer or Service.",
        ),
    ]
    endpoints: list[EndpointUrl] = Field(
        default_factory=list,
        max_length=MAX_ENDPOINTS,
        json_schema_extra={"uniqueItems": True},
        description="Direct URLs of the replicas of the remote server at url (needs url). "
        "Calls go to url while it is healthy and to these, weighted by recent latency and "
        "errors, while url's circuit breaker is open (a load balancer failure).",
    )
    headers: list[HeaderFromSecret] = Field(
        default_factory=list,
        max_length=64,
        description="Headers for a remote server, from Secrets.",
    )
    hosted: HostedSpec | None = Field(
        default=None, description="A server the operator runs in the cluster."
    )
    stdio: StdioSpec | None = Field(
        default=None, description="A server the runtime starts as a subprocess."
    )
    timeouts: MCPTimeouts = Field(default_factory=MCPTimeouts)
    resilience_policy_ref: LocalObjectReference | None = Field(
        default=None,
        description="The ResiliencePolicy (same namespace) whose mesh options the operator "
        "renders for a hosted server's Service; no mesh retries if unset.",
    )

    @model_validator(mode="after")
    def _exactly_one_shape(self) -> MCPServerSpec:
        shapes = [s for s in ("url", "hosted", "stdio") if getattr(self, s) is not None]
        if len(shapes) != 1:
            raise ValueError("exactly one of url, hosted or stdio must be set")
        if self.endpoints and self.url is None:
            raise ValueError("endpoints needs url: they are direct replicas of the server at url")
        return self

    @field_validator("endpoints")
    @classmethod
    def _distinct_endpoints(cls, endpoints: list[str]) -> list[str]:
        return distinct_endpoints(endpoints)


class ToolSchemaHash(CamelModel):
    """A tool and the hash of the input schema it was listed with."""

    name: str = Field(description="The tool's name.")
    input_schema_hash: str = Field(description="sha256:<hex> of its inputSchema as canonical JSON.")


class MCPServerStatus(ResourceStatus):
    """What the operator observed of an MCPServer."""

    url: str | None = Field(default=None, description="The address agents use.")
    tools: list[str] = Field(default_factory=list, description="The tools it last listed.")
    tool_schemas: list[ToolSchemaHash] = Field(
        default_factory=list,
        description="The input-schema hash of each tool it last listed: what an Agent's "
        "spec.tools[].pinnedTools pins.",
    )
    replicas: Annotated[
        int | None, Field(default=None, ge=0, description="Pods of a hosted server.")
    ]
    ready_replicas: Annotated[
        int | None, Field(default=None, ge=0, description="Ready pods of a hosted server.")
    ]


#: ``<name>-mcp`` names a hosted server's Service, which must stay a 63-character DNS label.
MCP_SERVER_NAME_MAX_LENGTH = 59


class MCPServerMeta(ObjectMeta):
    """An MCPServer's metadata: a shorter name, so that ``<name>-mcp`` is a Service name."""

    name: Annotated[
        str, Field(min_length=1, max_length=MCP_SERVER_NAME_MAX_LENGTH, pattern=DNS_1035_LABEL)
    ]


class MCPServer(Resource):
    """A Model Context Protocol server whose tools agents call: remote, hosted by the
    operator, or started by the runtime over stdio."""

    KIND: ClassVar[str] = "MCPServer"
    PLURAL: ClassVar[str] = "mcpservers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("mcp",)
    NAME_MAX_LENGTH: ClassVar[int] = MCP_SERVER_NAME_MAX_LENGTH
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="URL", type="string", json_path=".status.url"),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    )
    SPEC_CEL_RULES: ClassVar[tuple[dict[str, str], ...]] = (
        {
            "rule": "[has(self.url), has(self.hosted), has(self.stdio)].filter(x, x).size() == 1",
            "message": "exactly one of url, hosted or stdio must be set",
        },
        {
            "rule": "size(self.endpoints) == 0 || has(self.url)",
            "message": "endpoints needs url: they are direct replicas of the server at url",
            "fieldPath": ".endpoints",
        },
    )

    kind: Literal["MCPServer"] = "MCPServer"
    metadata: MCPServerMeta
    spec: MCPServerSpec
    status: MCPServerStatus | None = None
