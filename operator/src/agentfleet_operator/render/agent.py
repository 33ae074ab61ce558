"""An Agent → the Kubernetes objects that run it. Pure: no kopf, no API client.

:func:`render_agent` is the one entry point; the handler applies what it returns."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_crds.contract import CONFIG_MOUNT_PATH, SECRETS_MOUNT_DIR, AgentConfig
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy
from agentfleet_crds.v1alpha1.agent import ResourceRequirements
from agentfleet_operator.render.config import (
    MissingReference,
    build_agent_config,
    config_hash,
    config_yaml,
    referenced_secrets,
)
from agentfleet_operator.render.mesh import (
    MeshConfig,
    MeshTarget,
    Workload,
    mesh_object_names,
    render_mesh,
)
from agentfleet_operator.render.meta import (
    CONFIG_HASH_ANNOTATION,
    agent_labels,
    config_map_name,
    deployment_name,
    object_meta,
    owner_reference,
    selector_labels,
    service_host,
    service_name,
)
from agentfleet_operator.render.secrets import BoundSecrets
from agentfleet_operator.settings import OperatorSettings

#: The runtime's HTTP port inside the pod, and the Service's port in front of it.
RUNTIME_PORT = 8000
SERVICE_PORT = 80
CONFIG_KEY = posixpath.basename(CONFIG_MOUNT_PATH)
CONFIG_DIR = posixpath.dirname(CONFIG_MOUNT_PATH)
#: The UID/GID the runtime runs as (the image's non-root user).
RUNTIME_UID = 10001
LIVENESS_PATH = "/healthz/live"
READINESS_PATH = "/healthz/ready"
CONTAINER_NAME = "runtime"


@dataclass(frozen=True)
class ObjectRef:
    """Enough to find (and delete) an object: what :attr:`RenderedAgent.absent` lists."""

    api_version: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class RenderedAgent:
    """Everything an Agent turns into. Optional objects are ``None`` when disabled."""

    config: AgentConfig
    config_yaml: str
    config_hash: str
    endpoint: str
    config_map: dict[str, Any]
    deployment: dict[str, Any]
    service: dict[str, Any]
    hpa: dict[str, Any] | None
    pdb: dict[str, Any] | None
    network_policy: dict[str, Any] | None
    mesh_objects: list[dict[str, Any]] = field(default_factory=list)
    #: Optional objects that are switched off: deleted if they exist (and are ours).
    absent: list[ObjectRef] = field(default_factory=list)
    #: Secrets of SecretBindings that an earlier binding already gave under the same name.
    shadowed_secrets: list[str] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The objects to apply, in order: config before the pods that read it."""
        optional = (self.hpa, self.pdb, self.network_policy)
        return [
            self.config_map,
            self.service,
            self.deployment,
            *(o for o in optional if o),
            *self.mesh_objects,
        ]


def absent_objects(
    present: Collection[tuple[str, str, str]],
    possible: Collection[tuple[str, str, str]],
    namespace: str,
) -> list[ObjectRef]:
    """Every (apiVersion, kind, name) of ``possible`` that is not ``present``."""
    return [
        ObjectRef(api, kind, namespace, name)
        for api, kind, name in possible
        if (api, kind, name) not in present
    ]


def object_keys(objects: Collection[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    return {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects}


RenderResult = RenderedAgent | MissingReference


def render_agent(
    agent: Agent,
    mcp_servers: Mapping[str, MCPServer],
    policy: ResiliencePolicy | None,
    settings: OperatorSettings,
    *,
    bound: BoundSecrets | None = None,
    mesh: MeshConfig | None = None,
    mesh_retried: Collection[str] = frozenset(),
) -> RenderResult:
    """Render one Agent. ``mcp_servers`` maps names to the MCPServers that exist in the
    Agent's namespace (extra entries are ignored); ``policy`` is the referenced
    ResiliencePolicy if it exists; ``bound`` what SecretBindings give it; ``mesh`` the
    service mesh to configure; ``mesh_retried`` the MCPServers the mesh retries calls to.
    Owner references are set when the Agent has a uid."""
    bound = bound or BoundSecrets()
    mesh = mesh or MeshConfig()
    config = build_agent_config(
        agent,
        mcp_servers,
        policy,
        settings.cluster_domain,
        secrets=bound.secrets.values(),
        mesh_retried=mesh_retried,
    )
    if not isinstance(config, AgentConfig):
        return config
    text = config_yaml(config)
    digest = config_hash(text)
    name, namespace = agent.metadata.name, agent.metadata.namespace
    owner = (
        owner_reference(kind=agent.kind, name=name, uid=agent.metadata.uid)
        if agent.metadata.uid
        else None
    )
    secrets = referenced_secrets(agent, config.mcp_servers, mcp_servers)
    for secret, keys in bound.mounts.items():
        secrets.setdefault(secret, set()).update(keys)
    deployment_spec = agent.spec.deployment
    target = MeshTarget(
        service=service_name(name),
        namespace=namespace,
        port=SERVICE_PORT,
        cluster_domain=settings.cluster_domain,
        workload=Workload.AGENT,
        labels=agent_labels(name),
        owner=owner,
    )
    mesh_objects = render_mesh(target, mesh, policy.spec if policy is not None else None)
    hpa = render_hpa(agent, owner) if deployment_spec.autoscaling.enabled else None
    pdb = render_pdb(agent, owner) if deployment_spec.pod_disruption_budget.enabled else None
    network_policy = (
        render_network_policy(agent, owner) if deployment_spec.network_policy.enabled else None
    )
    workload = deployment_name(name)
    optional = [
        ("autoscaling/v2", "HorizontalPodAutoscaler", workload),
        ("policy/v1", "PodDisruptionBudget", workload),
        ("networking.k8s.io/v1", "NetworkPolicy", workload),
        *mesh_object_names(target.service, mesh),
    ]
    present = object_keys([o for o in (hpa, pdb, network_policy) if o] + mesh_objects)
    return RenderedAgent(
        config=config,
        config_yaml=text,
        config_hash=digest,
        endpoint=f"http://{service_host(service_name(name), namespace, settings.cluster_domain)}",
        config_map=render_config_map(name, namespace, text, owner, digest),
        deployment=render_deployment(agent, digest, secrets, settings, owner),
        service=render_service(name, namespace, owner),
        hpa=hpa,
        pdb=pdb,
        network_policy=network_policy,
        mesh_objects=mesh_objects,
        absent=absent_objects(present, optional, namespace),
        shadowed_secrets=list(bound.shadowed),
    )


def render_config_map(
    name: str, namespace: str, text: str, owner: dict[str, Any] | None, digest: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(
            name=config_map_name(name),
            namespace=namespace,
            labels=agent_labels(name),
            owner=owner,
            annotations={CONFIG_HASH_ANNOTATION: digest},
        ),
        "data": {CONFIG_KEY: text},
    }


def secret_volume_name(secret_name: str) -> str:
    """A DNS-label volume name for a Secret (Secret names may be longer and hold dots)."""
    return "secret-" + hashlib.sha256(secret_name.encode("utf-8")).hexdigest()[:12]


def _resources(requirements: ResourceRequirements) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = getattr(requirements, part).model_dump(exclude_none=True)
        if values:
            result[part] = values
    return result


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _runtime_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "AGENTFLEET_ENVIRONMENT", "value": settings.runtime_environment},
        {"name": "AGENTFLEET_HOST", "value": "0.0.0.0"},
        {"name": "AGENTFLEET_PORT", "value": str(RUNTIME_PORT)},
        {"name": "AGENTFLEET_CONFIG_FILE", "value": CONFIG_MOUNT_PATH},
        {"name": "AGENTFLEET_SECRETS_DIR", "value": SECRETS_MOUNT_DIR},
        {"name": "AGENTFLEET_CLUSTER_MODE", "value": "true"},
        {"name": "AGENTFLEET_LOG_FORMAT", "value": "json"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        # the address the runtime registers itself under (docs/discovery.md)
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    fixed = {item["name"] for item in env}
    env.extend(
        {"name": key, "value": value}
        for key, value in sorted(settings.runtime_env.items())
        if key not in fixed
    )
    return env


def render_deployment(
    agent: Agent,
    digest: str,
    secrets: Mapping[str, set[str]],
    settings: OperatorSettings,
    owner: dict[str, Any] | None,
) -> dict[str, Any]:
    name, namespace = agent.metadata.name, agent.metadata.namespace
    spec = agent.spec.deployment
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {
            "name": "config",
            "configMap": {"name": config_map_name(name), "defaultMode": 0o444},
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    for secret in sorted(secrets):
        volume = secret_volume_name(secret)
        volumes.append(
            {
                "name": volume,
                "secret": {
                    "secretName": secret,
                    "items": [{"key": key, "path": key} for key in sorted(secrets[secret])],
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append(
            {"name": volume, "mountPath": f"{SECRETS_MOUNT_DIR}/{secret}", "readOnly": True}
        )

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image or settings.runtime_image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["agentfleet"],
        "args": ["serve", "--config", CONFIG_MOUNT_PATH],
        "ports": [{"name": "http", "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        "env": _runtime_env(settings),
        "resources": _resources(spec.resources),
        "startupProbe": _probe(LIVENESS_PATH, period=2, failures=30),
        "livenessProbe": _probe(LIVENESS_PATH, period=10, failures=3),
        "readinessProbe": _probe(READINESS_PATH, period=5, failures=3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    deployment_spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            # live reload: the runtimes apply a changed config themselves; rollout: a
            # changed hash on the template rolls the pods
            "metadata": {"labels": agent_labels(name)}
            | (
                {"annotations": {CONFIG_HASH_ANNOTATION: digest}}
                if settings.config_reload == "rollout"
                else {}
            ),
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUNTIME_UID,
                    "runAsGroup": RUNTIME_UID,
                    "fsGroup": RUNTIME_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if not spec.autoscaling.enabled:  # the HPA owns the replica count otherwise
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            name=deployment_name(name), namespace=namespace, labels=agent_labels(name), owner=owner
        ),
        "spec": deployment_spec,
    }


def render_service(name: str, namespace: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            name=service_name(name), namespace=namespace, labels=agent_labels(name), owner=owner
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [
                {
                    "name": "http",
                    "port": SERVICE_PORT,
                    "targetPort": RUNTIME_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_hpa(agent: Agent, owner: dict[str, Any] | None) -> dict[str, Any]:
    name, namespace = agent.metadata.name, agent.metadata.namespace
    autoscaling = agent.spec.deployment.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(
            name=deployment_name(name), namespace=namespace, labels=agent_labels(name), owner=owner
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(name),
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def render_pdb(agent: Agent, owner: dict[str, Any] | None) -> dict[str, Any]:
    name, namespace = agent.metadata.name, agent.metadata.namespace
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(
            name=deployment_name(name), namespace=namespace, labels=agent_labels(name), owner=owner
        ),
        "spec": {
            "minAvailable": agent.spec.deployment.pod_disruption_budget.min_available,
            "selector": {"matchLabels": selector_labels(name)},
        },
    }


def render_network_policy(agent: Agent, owner: dict[str, Any] | None) -> dict[str, Any]:
    """Ingress to the agent's pods only from its own namespace and the allowed ones."""
    name, namespace = agent.metadata.name, agent.metadata.namespace
    allowed = agent.spec.deployment.network_policy.allowed_namespaces
    peers: list[dict[str, Any]] = [{"podSelector": {}}]
    peers.extend(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in sorted(set(allowed) - {namespace})
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(
            name=deployment_name(name), namespace=namespace, labels=agent_labels(name), owner=owner
        ),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": [{"protocol": "TCP", "port": RUNTIME_PORT}]},
            ],
        },
    }
