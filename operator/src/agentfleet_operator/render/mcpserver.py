"""A hosted MCPServer → the Deployment and Service that run it (+ mesh objects). Pure.

A server whose image speaks streamable HTTP runs as it is. A stdio-only server is bridged:
an init container of ``mcp_bridge_image`` copies a self-contained ``mcp-bridge`` executable
into a shared ``emptyDir`` (the image's entrypoint takes the target directory as its one
argument), and the server container runs ``mcp-bridge --host 0.0.0.0 --port P --path /mcp --
<command> <args>``, which serves streamable HTTP and starts the server's command as its
subprocess. A stdio server can only be reached from inside its own container (its
stdin/stdout), hence the copied executable rather than a sidecar; the mcp 2.3 SDK ships no
such bridge. The bridge image itself is not built yet (docs/operator.md, "Not built").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentfleet_crds.contract import hosted_mcp_url
from agentfleet_crds.v1alpha1 import MCPServer, MCPTransport, ResiliencePolicy
from agentfleet_crds.v1alpha1.mcpserver import EnvVar
from agentfleet_operator.render.agent import ObjectRef, _resources, absent_objects, object_keys
from agentfleet_operator.render.mesh import (
    MeshConfig,
    MeshTarget,
    Workload,
    mesh_object_names,
    render_mesh,
)
from agentfleet_operator.render.meta import (
    hosted_mcp_service_name,
    mcp_server_labels,
    mcp_server_selector_labels,
    object_meta,
    owner_reference,
)
from agentfleet_operator.settings import OperatorSettings

BRIDGE_DIR = "/opt/agentfleet-bridge"
BRIDGE_EXECUTABLE = f"{BRIDGE_DIR}/mcp-bridge"
SERVER_CONTAINER = "server"
#: The UID the server runs as unless its image says otherwise (never root).
SERVER_UID = 10001


class InvalidHostedServerError(ValueError):
    """The spec cannot be run (e.g. a stdio server without a command to bridge)."""


@dataclass(frozen=True)
class RenderedMCPServer:
    url: str
    deployment: dict[str, Any]
    service: dict[str, Any]
    mesh_objects: list[dict[str, Any]] = field(default_factory=list)
    absent: list[ObjectRef] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [self.service, self.deployment, *self.mesh_objects]


def _env(variables: list[EnvVar]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    for var in variables:
        if var.secret_key_ref is not None:
            ref = var.secret_key_ref
            env.append(
                {
                    "name": var.name,
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
        else:
            env.append({"name": var.name, "value": var.value or ""})
    return env


def render_hosted_mcp_server(
    server: MCPServer,
    policy: ResiliencePolicy | None,
    settings: OperatorSettings,
    mesh: MeshConfig | None = None,
) -> RenderedMCPServer:
    """Render a hosted MCPServer (``spec.hosted`` must be set)."""
    hosted = server.spec.hosted
    if hosted is None:
        raise InvalidHostedServerError("spec.hosted is not set")
    name, namespace = server.metadata.name, server.metadata.namespace
    mesh = mesh or MeshConfig()
    workload = hosted_mcp_service_name(name)
    owner = (
        owner_reference(kind=server.kind, name=name, uid=server.metadata.uid)
        if server.metadata.uid
        else None
    )
    labels = mcp_server_labels(name)
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": hosted.image,
        "ports": [{"name": "http", "containerPort": hosted.port, "protocol": "TCP"}],
        "env": _env(hosted.env),
        "resources": _resources(hosted.resources),
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "tcpSocket": {"port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if hosted.transport is MCPTransport.STDIO:
        if not hosted.command:
            raise InvalidHostedServerError(
                "a hosted stdio server needs spec.hosted.command: the bridge starts it"
            )
        container["command"] = [
            BRIDGE_EXECUTABLE,
            "--host",
            "0.0.0.0",
            "--port",
            str(hosted.port),
            "--path",
            hosted.path,
            "--",
            *hosted.command,
            *hosted.args,
        ]
        container["volumeMounts"] = [{"name": "bridge", "mountPath": BRIDGE_DIR, "readOnly": True}]
        pod["volumes"] = [{"name": "bridge", "emptyDir": {"sizeLimit": "64Mi"}}]
        pod["initContainers"] = [
            {
                "name": "install-mcp-bridge",
                "image": settings.mcp_bridge_image,
                "args": [BRIDGE_DIR],
                "volumeMounts": [{"name": "bridge", "mountPath": BRIDGE_DIR}],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "runAsUser": SERVER_UID,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        ]
    else:
        if hosted.command:
            container["command"] = list(hosted.command)
        if hosted.args:
            container["args"] = list(hosted.args)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(name=workload, namespace=namespace, labels=labels, owner=owner),
        "spec": {
            "replicas": hosted.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": mcp_server_selector_labels(name)},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name=workload, namespace=namespace, labels=labels, owner=owner),
        "spec": {
            "type": "ClusterIP",
            "selector": mcp_server_selector_labels(name),
            "ports": [
                {
                    "name": "http",
                    "port": hosted.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }
    target = MeshTarget(
        service=workload,
        namespace=namespace,
        port=hosted.port,
        cluster_domain=settings.cluster_domain,
        workload=Workload.MCP_SERVER,
        labels=labels,
        owner=owner,
        min_per_try_seconds=server.spec.timeouts.call_seconds,
        connect_timeout_seconds=server.spec.timeouts.connect_seconds,
    )
    mesh_objects = render_mesh(target, mesh, policy.spec if policy is not None else None)
    return RenderedMCPServer(
        url=hosted_mcp_url(server, settings.cluster_domain),
        deployment=deployment,
        service=service,
        mesh_objects=mesh_objects,
        absent=absent_objects(
            object_keys(mesh_objects), mesh_object_names(workload, mesh), namespace
        ),
    )
