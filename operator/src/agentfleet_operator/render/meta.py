"""Names, labels and owner references of the objects the operator owns. Pure."""

from __future__ import annotations

from typing import Any

from agentfleet_crds.contract import hosted_mcp_service_name as _hosted_mcp_service_name
from agentfleet_crds.v1alpha1 import API_VERSION, GROUP

#: Label on every object the operator owns for an Agent: the Agent's name.
AGENT_LABEL = f"{GROUP}/agent"
#: Label on every object the operator owns for a hosted MCPServer: the server's name.
MCP_SERVER_LABEL = f"{GROUP}/mcp-server"
#: Pod annotation: sha256 of the rendered runtime config; a change rolls the pods.
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
PART_OF_LABEL = "app.kubernetes.io/part-of"

AGENT_APP_NAME = "agentfleet-agent"
MCP_SERVER_APP_NAME = "agentfleet-mcp-server"
MANAGED_BY = "agentfleet-operator"
PART_OF = "agentfleet"


def deployment_name(agent_name: str) -> str:
    """The Agent's Deployment (also its Service, HPA, PDB and NetworkPolicy)."""
    return agent_name


def service_name(agent_name: str) -> str:
    return agent_name


def config_map_name(agent_name: str) -> str:
    return f"{agent_name}-config"


def hosted_mcp_service_name(mcp_server_name: str) -> str:
    """The Service (and Deployment) the operator runs a hosted MCPServer as: ``<name>-mcp``
    (the contract's name, which the runtime config's URL uses too)."""
    return _hosted_mcp_service_name(mcp_server_name)


def service_host(name: str, namespace: str, cluster_domain: str) -> str:
    return f"{name}.{namespace}.svc.{cluster_domain}"


def selector_labels(agent_name: str) -> dict[str, str]:
    """The labels that select an Agent's pods. Deployment selectors are immutable: never
    add to these."""
    return {NAME_LABEL: AGENT_APP_NAME, INSTANCE_LABEL: agent_name}


def agent_labels(agent_name: str) -> dict[str, str]:
    """The standard labels on everything the operator owns for an Agent."""
    return {
        **selector_labels(agent_name),
        COMPONENT_LABEL: "agent",
        MANAGED_BY_LABEL: MANAGED_BY,
        PART_OF_LABEL: PART_OF,
        AGENT_LABEL: agent_name,
    }


def mcp_server_selector_labels(server_name: str) -> dict[str, str]:
    """The labels that select a hosted MCPServer's pods (immutable: never add to these)."""
    return {NAME_LABEL: MCP_SERVER_APP_NAME, INSTANCE_LABEL: server_name}


def mcp_server_labels(server_name: str) -> dict[str, str]:
    """The standard labels on everything the operator owns for a hosted MCPServer."""
    return {
        **mcp_server_selector_labels(server_name),
        COMPONENT_LABEL: "mcp-server",
        MANAGED_BY_LABEL: MANAGED_BY,
        PART_OF_LABEL: PART_OF,
        MCP_SERVER_LABEL: server_name,
    }


def owner_reference(*, kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller owner reference to an agentfleet resource: garbage collection deletes
    the owned object with its owner."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any] | None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta
