"""The API resources the operator reads and writes, and their URL paths."""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet_crds.v1alpha1 import (
    GROUP,
    VERSION,
    Agent,
    MCPServer,
    ResiliencePolicy,
    SecretBinding,
)


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
            if subresource is not None:
                parts.append(subresource)
        return "/".join(parts)


AGENTS = ApiResource(GROUP, VERSION, Agent.PLURAL, Agent.KIND)
MCP_SERVERS = ApiResource(GROUP, VERSION, MCPServer.PLURAL, MCPServer.KIND)
RESILIENCE_POLICIES = ApiResource(GROUP, VERSION, ResiliencePolicy.PLURAL, ResiliencePolicy.KIND)
SECRET_BINDINGS = ApiResource(GROUP, VERSION, SecretBinding.PLURAL, SecretBinding.KIND)

CONFIG_MAPS = ApiResource("", "v1", "configmaps", "ConfigMap")
SERVICES = ApiResource("", "v1", "services", "Service")
SECRETS = ApiResource("", "v1", "secrets", "Secret")
DEPLOYMENTS = ApiResource("apps", "v1", "deployments", "Deployment")
HPAS = ApiResource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDBS = ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
NETWORK_POLICIES = ApiResource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
EVENTS = ApiResource("", "v1", "events", "Event")
LEASES = ApiResource("coordination.k8s.io", "v1", "leases", "Lease")

#: Mesh kinds by kind name (their group/version come from discovery).
MESH_PLURALS = {
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "HTTPRoute": "httproutes",
}

_BY_KIND = {
    (r.api_version, r.kind): r
    for r in (
        AGENTS,
        MCP_SERVERS,
        RESILIENCE_POLICIES,
        SECRET_BINDINGS,
        CONFIG_MAPS,
        SERVICES,
        SECRETS,
        DEPLOYMENTS,
        HPAS,
        PDBS,
        NETWORK_POLICIES,
        EVENTS,
        LEASES,
    )
}


def resource_for(api_version: str, kind: str) -> ApiResource:
    """The resource of an object the operator renders."""
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        pass
    if kind in MESH_PLURALS and "/" in api_version:
        group, version = api_version.split("/", 1)
        return ApiResource(group, version, MESH_PLURALS[kind], kind)
    raise ValueError(f"the operator does not manage {api_version} {kind}")
