"""ResiliencePolicy ``mesh`` options → Istio or Linkerd objects for one Service. Pure.

The retry-amplification rule: a hop is retried by the mesh **or** in-process, never both.

* ``mesh.retries: inProcess`` (the default): the mesh makes one attempt. Istio retries by
  default (2 retries on connect-failure/refused-stream/unavailable/cancelled/503), so the
  operator writes ``retries: {attempts: 0}`` on every route; Linkerd does not retry unless
  told, so nothing is written.
* ``mesh.retries: mesh``: the mesh retries the routes that may be retried, and the runtime
  config of every Agent that calls the Service says ``meshRetries: true`` for it, so the
  runtime makes one attempt per call (:func:`hop_retried_by_mesh` decides both).

Some routes are never retried and never get a request timeout, whatever the policy says:
streams (Server-Sent Events, WebSocket — a retried stream replays a prompt whose tokens the
user already saw; a short timeout cuts a long answer) and, on an agent, non-idempotent
requests (a POST runs a turn: the model and the tools would run again). On an agent they
are told apart by method, the ``Upgrade: websocket`` and ``Accept: text/event-stream``
headers, and the runtime's stream path convention (``STREAM_PATH_REGEX`` in the contract).
Istio takes the first matching route, so the never-retried route comes first; Gateway API
(Linkerd) prefers, for the same path prefix, a method match and then more header matches
(deterministic), while a regex path's precedence is implementation-specific — so the path
regex is a second line of defence there and the headers the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agentfleet_crds.contract import STREAM_PATH_REGEX
from agentfleet_crds.v1alpha1.resiliencepolicy import (
    MeshOptions,
    MeshRetryMode,
    ResiliencePolicySpec,
)
from agentfleet_operator.render.meta import object_meta, service_host


class Mesh(StrEnum):
    NONE = "none"
    ISTIO = "istio"
    LINKERD = "linkerd"


ISTIO_GROUP = "networking.istio.io"
LINKERD_POLICY_GROUP = "policy.linkerd.io"


@dataclass(frozen=True)
class MeshConfig:
    """The mesh the operator renders for, with the API versions found in the cluster."""

    mesh: Mesh = Mesh.NONE
    istio_version: str = "v1"
    linkerd_route_version: str = "v1beta3"

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        """(apiVersion, kind) of every object this mesh is configured with."""
        if self.mesh is Mesh.ISTIO:
            api = f"{ISTIO_GROUP}/{self.istio_version}"
            return ((api, "VirtualService"), (api, "DestinationRule"))
        if self.mesh is Mesh.LINKERD:
            return ((f"{LINKERD_POLICY_GROUP}/{self.linkerd_route_version}", "HTTPRoute"),)
        return ()


class Workload(StrEnum):
    """What runs behind the Service: it decides which routes may ever be retried."""

    AGENT = (
        "agent"  # the runtime's API: POST/PATCH run turns or change state, GET may be a WebSocket
    )
    MCP_SERVER = "mcp-server"  # MCP streamable HTTP: POST = JSON-RPC calls, GET = the SSE stream


#: Methods the mesh may retry, per workload (when the policy says so). Everything else —
#: and a WebSocket upgrade on an agent — is never retried and never timed out.
RETRYABLE_METHODS: Mapping[Workload, tuple[str, ...]] = {
    Workload.AGENT: ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
    Workload.MCP_SERVER: ("POST", "DELETE"),
}
UNRETRIED_METHODS: Mapping[Workload, tuple[str, ...]] = {
    Workload.AGENT: ("POST", "PATCH"),
    Workload.MCP_SERVER: ("GET",),
}
#: An ``Accept`` header asking for Server-Sent Events.
EVENT_STREAM_ACCEPT = ".*text/event-stream.*"
#: Linkerd's ``retry.linkerd.io/http`` takes status codes and classes, not Envoy's retryOn.
_LINKERD_STATUS_TOKENS = frozenset({"5xx", "gateway-error"})


@dataclass(frozen=True)
class MeshTarget:
    """One Service the operator owns, as the mesh objects need it."""

    service: str
    namespace: str
    port: int
    cluster_domain: str
    workload: Workload
    labels: Mapping[str, str]
    owner: dict[str, Any] | None
    #: A mesh per-try timeout never cuts a call shorter than this (an MCP tool call's own
    #: deadline), so the runtime's deadline, not the mesh's, ends a slow call.
    min_per_try_seconds: float = 0.0
    connect_timeout_seconds: float | None = None

    @property
    def host(self) -> str:
        return service_host(self.service, self.namespace, self.cluster_domain)


def hop_retried_by_mesh(mesh: Mesh, policy: ResiliencePolicySpec | None) -> bool:
    """Whether the mesh retries calls to a Service with this policy: the policy asks for
    mesh retries and a mesh is there to do them. The runtime retries the hop otherwise."""
    return (
        mesh is not Mesh.NONE and policy is not None and policy.mesh.retries is MeshRetryMode.MESH
    )


def duration(seconds: float) -> str:
    """A duration both protobuf JSON (Istio) and Go accept: ``1.5s``, ``30s``, ``0s``."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def millis(seconds: float) -> str:
    """Linkerd annotation durations: whole milliseconds with the unit, e.g. ``1500ms``."""
    return f"{round(seconds * 1000)}ms"


def per_try_seconds(target: MeshTarget, options: MeshOptions) -> float:
    return max(options.per_try_timeout_seconds, target.min_per_try_seconds)


def linkerd_status_codes(retry_on: str) -> str:
    """Envoy-style ``retryOn`` → the status codes/classes Linkerd retries. Connection-level
    conditions (``reset``, ``connect-failure``...) have no Linkerd equivalent (its load
    balancer already fails over failed connections) and are dropped; ``5xx`` if nothing
    remains."""
    kept: list[str] = []
    for token in (t.strip() for t in retry_on.split(",")):
        is_code = token.replace("-", "").isdigit() and token.count("-") <= 1
        if (token in _LINKERD_STATUS_TOKENS or is_code) and token not in kept:
            kept.append(token)
    return ",".join(kept) or "5xx"


def render_mesh(
    target: MeshTarget, config: MeshConfig, policy: ResiliencePolicySpec | None
) -> list[dict[str, Any]]:
    """The mesh objects for ``target`` (none without a mesh)."""
    if config.mesh is Mesh.ISTIO:
        return [
            istio_virtual_service(target, config, policy),
            istio_destination_rule(target, config, policy),
        ]
    if config.mesh is Mesh.LINKERD:
        return linkerd_routes(target, config, policy)
    return []


def _meta(target: MeshTarget, name: str, annotations: dict[str, str] | None = None) -> Any:
    return object_meta(
        name=name,
        namespace=target.namespace,
        labels=dict(target.labels),
        owner=target.owner,
        annotations=annotations,
    )


def istio_virtual_service(
    target: MeshTarget, config: MeshConfig, policy: ResiliencePolicySpec | None
) -> dict[str, Any]:
    """Routes in order (Istio takes the first match): the never-retried ones, then the
    rest. ``timeout: 0s`` disables the request timeout."""
    destination = [{"destination": {"host": target.host, "port": {"number": target.port}}}]
    unretried: list[dict[str, Any]] = [
        {"method": {"exact": method}} for method in UNRETRIED_METHODS[target.workload]
    ]
    if target.workload is Workload.AGENT:
        unretried.extend(
            [
                {"headers": {"upgrade": {"exact": "websocket"}}},
                {"headers": {"accept": {"regex": EVENT_STREAM_ACCEPT}}},
                {"uri": {"regex": STREAM_PATH_REGEX}},
            ]
        )
    default: dict[str, Any] = {"name": "default", "route": destination}
    if hop_retried_by_mesh(config.mesh, policy):
        assert policy is not None
        options = policy.mesh
        per_try = per_try_seconds(target, options)
        default["retries"] = {
            "attempts": options.attempts,
            "perTryTimeout": duration(per_try),
            "retryOn": options.retry_on,
        }
        default["timeout"] = duration(per_try * (options.attempts + 1))
    else:
        default["retries"] = {"attempts": 0}
    return {
        "apiVersion": f"{ISTIO_GROUP}/{config.istio_version}",
        "kind": "VirtualService",
        "metadata": _meta(target, target.service),
        "spec": {
            "hosts": [target.host],
            "http": [
                {
                    "name": "never-retried",
                    "match": unretried,
                    "route": destination,
                    "retries": {"attempts": 0},
                    "timeout": "0s",
                },
                default,
            ],
        },
    }


def istio_destination_rule(
    target: MeshTarget, config: MeshConfig, policy: ResiliencePolicySpec | None
) -> dict[str, Any]:
    """Outlier detection (ejects failing pods: complements the runtime's breakers without
    adding calls) and the connection pool. Istio has no ratio retry budget: with mesh
    retries, ``maxRetries`` caps retries in flight at ``ratio`` of the HTTP bulkhead."""
    spec = policy or ResiliencePolicySpec()
    options = spec.mesh
    traffic: dict[str, Any] = {
        "outlierDetection": {
            "consecutive5xxErrors": options.consecutive_errors,
            "interval": "10s",
            "baseEjectionTime": duration(options.base_ejection_seconds),
            "maxEjectionPercent": 50,
        }
    }
    pool: dict[str, Any] = {}
    if target.connect_timeout_seconds is not None:
        pool["tcp"] = {"connectTimeout": duration(target.connect_timeout_seconds)}
    if hop_retried_by_mesh(config.mesh, policy):
        budget = spec.http.retry_budget
        limit = spec.http.bulkhead.max_concurrent
        pool["http"] = {"maxRetries": max(1, math.ceil(limit * budget.ratio))}
    if pool:
        traffic["connectionPool"] = pool
    return {
        "apiVersion": f"{ISTIO_GROUP}/{config.istio_version}",
        "kind": "DestinationRule",
        "metadata": _meta(target, target.service),
        "spec": {"host": target.host, "trafficPolicy": traffic},
    }


def linkerd_route_names(service: str) -> tuple[str, str]:
    """The two HTTPRoutes of a Service: (retried, never retried)."""
    return f"{service}-retried", f"{service}-never-retried"


def linkerd_routes(
    target: MeshTarget, config: MeshConfig, policy: ResiliencePolicySpec | None
) -> list[dict[str, Any]]:
    """Linkerd retries nothing unless annotated, so with in-process retries no route is
    needed. With mesh retries: one HTTPRoute with the retry and timeout annotations for the
    retryable methods, one without annotations for the rest (once a route is attached to a
    Service, unmatched requests would fail). Linkerd's annotation retries have no retry
    budget (ServiceProfiles had one; they disable annotation config, so none is written)."""
    if not hop_retried_by_mesh(config.mesh, policy):
        return []
    assert policy is not None
    options = policy.mesh
    per_try = per_try_seconds(target, options)
    api_version = f"{LINKERD_POLICY_GROUP}/{config.linkerd_route_version}"
    parent = {"group": "core", "kind": "Service", "name": target.service, "port": target.port}
    backend = [{"name": target.service, "port": target.port}]
    prefix = {"type": "PathPrefix", "value": "/"}
    retried_name, unretried_name = linkerd_route_names(target.service)
    unretried_matches: list[dict[str, Any]] = [
        {"path": prefix, "method": method} for method in UNRETRIED_METHODS[target.workload]
    ]
    if target.workload is Workload.AGENT:
        unretried_matches.extend(
            [
                {
                    "path": prefix,
                    "method": "GET",
                    "headers": [{"type": "Exact", "name": "upgrade", "value": "websocket"}],
                },
                {
                    "path": prefix,
                    "method": "GET",
                    "headers": [
                        {
                            "type": "RegularExpression",
                            "name": "accept",
                            "value": EVENT_STREAM_ACCEPT,
                        }
                    ],
                },
                {"path": {"type": "RegularExpression", "value": STREAM_PATH_REGEX}},
            ]
        )
    annotations = {
        "retry.linkerd.io/http": linkerd_status_codes(options.retry_on),
        "retry.linkerd.io/limit": str(options.attempts),
        "retry.linkerd.io/timeout": millis(per_try),
        "timeout.linkerd.io/request": millis(per_try * (options.attempts + 1)),
    }
    return [
        {
            "apiVersion": api_version,
            "kind": "HTTPRoute",
            "metadata": _meta(target, retried_name, annotations),
            "spec": {
                "parentRefs": [parent],
                "rules": [
                    {
                        "matches": [
                            {"path": prefix, "method": method}
                            for method in RETRYABLE_METHODS[target.workload]
                        ],
                        "backendRefs": backend,
                    }
                ],
            },
        },
        {
            "apiVersion": api_version,
            "kind": "HTTPRoute",
            "metadata": _meta(target, unretried_name),
            "spec": {
                "parentRefs": [parent],
                "rules": [{"matches": unretried_matches, "backendRefs": backend}],
            },
        },
    ]


def mesh_object_names(service: str, config: MeshConfig) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every mesh object a Service may have: what to delete
    when the objects are not (or no longer) rendered."""
    if config.mesh is Mesh.ISTIO:
        return [(api, kind, service) for api, kind in config.kinds]
    if config.mesh is Mesh.LINKERD:
        ((api, kind),) = config.kinds
        return [(api, kind, name) for name in linkerd_route_names(service)]
    return []
