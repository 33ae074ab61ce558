"""``agentfleet.dev/v1alpha1``."""

from agentfleet_crds.v1alpha1.agent import (
    Agent,
    AgentSpec,
    AgentStatus,
    ModelProviderName,
    ModelSpec,
)
from agentfleet_crds.v1alpha1.common import API_VERSION, GROUP, VERSION, Condition, Resource
from agentfleet_crds.v1alpha1.mcpserver import MCPServer, MCPServerSpec, MCPTransport
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicy, ResiliencePolicySpec
from agentfleet_crds.v1alpha1.secretbinding import SecretBinding, SecretBindingSpec

#: Every custom resource, in the order the CRD files are generated.
RESOURCES: tuple[type[Resource], ...] = (Agent, MCPServer, ResiliencePolicy, SecretBinding)

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "Agent",
    "AgentSpec",
    "AgentStatus",
    "Condition",
    "MCPServer",
    "MCPServerSpec",
    "MCPTransport",
    "ModelProviderName",
    "ModelSpec",
    "ResiliencePolicy",
    "ResiliencePolicySpec",
    "Resource",
    "SecretBinding",
    "SecretBindingSpec",
]
