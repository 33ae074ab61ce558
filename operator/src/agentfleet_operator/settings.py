"""The operator's settings: one typed object, read from ``AGENTFLEET_OPERATOR_*`` environment
variables by :meth:`OperatorSettings.from_env` in the startup handler (never at import time).

=================================================  ==========================================
variable                                           meaning
=================================================  ==========================================
``AGENTFLEET_OPERATOR_RUNTIME_IMAGE``              runtime image for agents without one
``AGENTFLEET_OPERATOR_NAMESPACES``                 comma-separated namespaces to watch;
                                                   empty: the whole cluster
``AGENTFLEET_OPERATOR_CLUSTER_DOMAIN``             DNS suffix of in-cluster service names
``AGENTFLEET_OPERATOR_RUNTIME_ENVIRONMENT``        ``AGENTFLEET_ENVIRONMENT`` of runtime pods
``AGENTFLEET_OPERATOR_RUNTIME_ENV``                extra ``NAME=value`` pairs (comma-separated)
                                                   for every runtime container (e.g. Redis)
``AGENTFLEET_OPERATOR_DEPENDENCY_RETRY_SECONDS``   retry delay while a referenced resource is
                                                   missing
``AGENTFLEET_OPERATOR_APPLY_RETRY_SECONDS``        retry delay after a failed API call
``AGENTFLEET_OPERATOR_KUBE_API_SERVER``            talk to this API URL without credentials
                                                   (``kubectl proxy``, tests); unset: service
                                                   account, then kubeconfig
``AGENTFLEET_OPERATOR_KUBE_INSECURE``              skip TLS verification (only with the above)
``AGENTFLEET_OPERATOR_STANDALONE``                 ``false`` turns kopf peering on (needs the
                                                   peering CRD; see docs/operator.md: replicas
                                                   use leader election instead)
``AGENTFLEET_OPERATOR_MESH``                       ``auto`` (detect from installed CRDs),
                                                   ``istio``, ``linkerd`` or ``none``
``AGENTFLEET_OPERATOR_CONFIG_RELOAD``              ``live`` (runtimes apply a changed config
                                                   without restarting) or ``rollout`` (the
                                                   config hash on the pod template rolls pods)
``AGENTFLEET_OPERATOR_WORKERS``                    concurrent reconciles
``AGENTFLEET_OPERATOR_RESYNC_SECONDS``             every object is reconciled again this often
                                                   (drift nobody watched, e.g. a missed event)
``AGENTFLEET_OPERATOR_REQUEST_TIMEOUT_SECONDS``    bound on every API call of a reconcile
``AGENTFLEET_OPERATOR_MCP_PROBE_TIMEOUT_SECONDS``  bound on listing a server's tools
                                                   (0 turns probing off)
``AGENTFLEET_OPERATOR_MCP_BRIDGE_IMAGE``           image holding ``/mcp-bridge`` for hosted
                                                   stdio servers
``AGENTFLEET_OPERATOR_LEADER_ELECTION``            ``false``: no Lease (one replica only)
``AGENTFLEET_OPERATOR_LEADER_ELECTION_NAMESPACE``  namespace of the Lease (default: the pod's,
                                                   from ``POD_NAMESPACE``)
``AGENTFLEET_OPERATOR_LEADER_ELECTION_LEASE``      name of the Lease
``AGENTFLEET_OPERATOR_LEASE_DURATION_SECONDS``     how long a leader's claim lasts unrenewed
``AGENTFLEET_OPERATOR_HEALTH_ADDRESS``             ``host:port`` of ``/healthz``, ``/readyz``,
                                                   ``/metrics`` (empty: off)
``AGENTFLEET_OPERATOR_POD_NAME``                   this replica's identity (default: the
                                                   ``POD_NAME``/host name)
=================================================  ==========================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "AGENTFLEET_OPERATOR_"
DEFAULT_RUNTIME_IMAGE = "ghcr.io/agentfleet/runtime:0.1.0"
DEFAULT_MCP_BRIDGE_IMAGE = "ghcr.io/agentfleet/mcp-bridge:0.1.0"
DEFAULT_LEASE_NAME = "agentfleet-operator"

MeshSetting = Literal["auto", "istio", "linkerd", "none"]
#: How a changed runtime config reaches running pods: ``live`` — the runtime watches its
#: ConfigMap volume and switches agents over with health checks (docs/discovery.md), the
#: config hash is an annotation of the ConfigMap; ``rollout`` — the hash is on the pod
#: template, so every change rolls the Deployment.
ConfigReload = Literal["live", "rollout"]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class OperatorSettings(BaseModel):
    """Everything the operator is configured with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime_image: Annotated[str, Field(min_length=1, max_length=512)] = DEFAULT_RUNTIME_IMAGE
    #: Namespaces to watch; empty means cluster-wide.
    namespaces: tuple[Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)], ...] = ()
    cluster_domain: Annotated[str, Field(min_length=1, max_length=253)] = "cluster.local"
    runtime_environment: Literal["development", "staging", "production"] = "production"
    runtime_env: dict[Annotated[str, Field(pattern=_ENV_NAME)], str] = Field(default_factory=dict)
    dependency_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    apply_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    kube_api_server: Annotated[str | None, Field(pattern=r"^https?://")] = None
    kube_insecure: bool = False
    standalone: bool = True
    mesh: MeshSetting = "auto"
    config_reload: ConfigReload = "live"
    workers: Annotated[int, Field(ge=1, le=256)] = 8
    resync_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    request_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    mcp_probe_timeout_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    mcp_bridge_image: Annotated[str, Field(min_length=1, max_length=512)] = DEFAULT_MCP_BRIDGE_IMAGE
    leader_election: bool = True
    leader_election_namespace: Annotated[str | None, Field(pattern=_DNS_LABEL)] = None
    leader_election_lease: Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)] = (
        DEFAULT_LEASE_NAME
    )
    lease_duration_seconds: Annotated[float, Field(ge=1, le=600)] = 15.0
    health_address: Annotated[str, Field(pattern=r"^$|^[^:]*:[0-9]{1,5}$")] = "0.0.0.0:8080"
    pod_name: Annotated[str | None, Field(max_length=253)] = None

    @model_validator(mode="after")
    def _insecure_needs_explicit_server(self) -> OperatorSettings:
        if self.kube_insecure and self.kube_api_server is None:
            raise ValueError(
                "kube_insecure only applies to an explicit kube_api_server; "
                "in-cluster and kubeconfig credentials are always verified"
            )
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def lease_namespace(self) -> str:
        """Where the leader-election Lease lives: as configured, else the first watched
        namespace, else ``default``."""
        if self.leader_election_namespace:
            return self.leader_election_namespace
        return self.namespaces[0] if self.namespaces else "default"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from ``AGENTFLEET_OPERATOR_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        values: dict[str, object] = {}
        for field in (
            "runtime_image",
            "cluster_domain",
            "runtime_environment",
            "dependency_retry_seconds",
            "apply_retry_seconds",
            "kube_api_server",
            "kube_insecure",
            "standalone",
            "mesh",
            "config_reload",
            "workers",
            "resync_seconds",
            "request_timeout_seconds",
            "mcp_probe_timeout_seconds",
            "mcp_bridge_image",
            "leader_election",
            "leader_election_namespace",
            "leader_election_lease",
            "lease_duration_seconds",
            "pod_name",
        ):
            raw = get(field.upper())
            if raw is not None:
                values[field] = raw
        health = env.get(ENV_PREFIX + "HEALTH_ADDRESS")
        if health is not None:
            values["health_address"] = health.strip()
        if "leader_election_namespace" not in values and env.get("POD_NAMESPACE", "").strip():
            values["leader_election_namespace"] = env["POD_NAMESPACE"].strip()
        if "pod_name" not in values and env.get("POD_NAME", "").strip():
            values["pod_name"] = env["POD_NAME"].strip()
        if (raw := get("NAMESPACES")) is not None:
            values["namespaces"] = tuple(n.strip() for n in raw.split(",") if n.strip())
        if (raw := get("RUNTIME_ENV")) is not None:
            values["runtime_env"] = _parse_pairs(raw)
        return cls.model_validate(values)


def _parse_pairs(raw: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{ENV_PREFIX}RUNTIME_ENV: expected NAME=value, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs
