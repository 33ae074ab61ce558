"""The runtime config: what the operator renders into an Agent's ConfigMap and what the
runtime reads (``agentfleet serve --config``), and what ``agentfleet dev -f`` builds from
manifests. One model, so operator and runtime cannot drift apart."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_crds.v1alpha1.common import CamelModel
from agentfleet_crds.v1alpha1.mcpserver import MCPTimeouts, MCPTransport
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec

#: Where the operator mounts Kubernetes Secrets in runtime pods: ``<dir>/<secret>/<key>``.
SECRETS_MOUNT_DIR = "/var/run/agentfleet/secrets"
#: Where the operator mounts the rendered runtime config.
CONFIG_MOUNT_PATH = "/etc/agentfleet/config.yaml"


class ResolvedMCPServer(CamelModel):
    """An MCPServer reduced to how the runtime reaches it."""

    name: str
    transport: MCPTransport
    url: str | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    #: header name → file holding its value (a mounted Secret key); never the value itself.
    header_files: dict[str, str] = Field(default_factory=dict)
    timeouts: MCPTimeouts = Field(default_factory=MCPTimeouts)
    allowed_tools: list[str] | None = None


class AgentConfig(CamelModel):
    """Everything the runtime needs to run one agent."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    namespace: str = "default"
    spec: AgentSpec
    mcp_servers: list[ResolvedMCPServer] = Field(default_factory=list)
    resilience: ResiliencePolicySpec = Field(default_factory=ResiliencePolicySpec)


class RuntimeConfig(CamelModel):
    """The whole file the runtime loads at start-up."""

    agents: list[AgentConfig] = Field(default_factory=list)
