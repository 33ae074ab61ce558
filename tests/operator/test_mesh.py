"""Mesh objects from ResiliencePolicies, field by field, and the retry-amplification rule:
a hop is retried by the mesh or in-process, never both; streams are never retried by the
mesh and get no request timeout."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentfleet_crds.contract import STREAM_PATH_REGEX
from agentfleet_crds.v1alpha1 import Agent, MCPServer, ResiliencePolicy
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_operator.controller.mesh import mesh_from_groups
from agentfleet_operator.render import render_agent
from agentfleet_operator.render.agent import RenderedAgent
from agentfleet_operator.render.mcpserver import render_hosted_mcp_server
from agentfleet_operator.render.mesh import (
    Mesh,
    MeshConfig,
    MeshTarget,
    Workload,
    duration,
    hop_retried_by_mesh,
    linkerd_status_codes,
    millis,
    render_mesh,
)
from agentfleet_operator.settings import OperatorSettings

ISTIO = MeshConfig(Mesh.ISTIO)
LINKERD = MeshConfig(Mesh.LINKERD)
OWNER = {"apiVersion": "agentfleet.dev/v1alpha1", "kind": "Agent", "name": "a", "uid": "u"}


def target(workload: Workload, **kwargs: Any) -> MeshTarget:
    return MeshTarget(
        service="svc",
        namespace="ns",
        port=80,
        cluster_domain="cluster.local",
        workload=workload,
        labels={"app": "x"},
        owner=OWNER,
        **kwargs,
    )


def policy(retries: str = "mesh", **mesh: Any) -> ResiliencePolicySpec:
    return ResiliencePolicySpec.model_validate({"mesh": {"retries": retries, **mesh}})


def test_istio_virtual_service_with_mesh_retries() -> None:
    spec = policy(attempts=3, perTryTimeoutSeconds=2.5, retryOn="5xx,reset")
    vs, dr = render_mesh(target(Workload.AGENT), ISTIO, spec)
    assert vs["apiVersion"] == "networking.istio.io/v1"
    assert vs["kind"] == "VirtualService"
    assert vs["metadata"]["ownerReferences"] == [OWNER]
    assert vs["spec"]["hosts"] == ["svc.ns.svc.cluster.local"]
    never, default = vs["spec"]["http"]
    destination = [{"destination": {"host": "svc.ns.svc.cluster.local", "port": {"number": 80}}}]
    assert never == {
        "name": "never-retried",
        "match": [
            {"method": {"exact": "POST"}},
            {"method": {"exact": "PATCH"}},
            {"headers": {"upgrade": {"exact": "websocket"}}},
            {"headers": {"accept": {"regex": ".*text/event-stream.*"}}},
            {"uri": {"regex": "^/.*/stream$"}},
        ],
        "route": destination,
        "retries": {"attempts": 0},
        "timeout": "0s",
    }
    assert default == {
        "name": "default",
        "route": destination,
        "retries": {"attempts": 3, "perTryTimeout": "2.5s", "retryOn": "5xx,reset"},
        "timeout": "10s",
    }
    assert dr["kind"] == "DestinationRule"
    assert dr["spec"]["host"] == "svc.ns.svc.cluster.local"
    assert dr["spec"]["trafficPolicy"]["outlierDetection"] == {
        "consecutive5xxErrors": 5,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
    }
    # Istio has no ratio budget: retries in flight capped at ratio x the HTTP bulkhead.
    assert dr["spec"]["trafficPolicy"]["connectionPool"] == {"http": {"maxRetries": 7}}


def test_istio_in_process_mode_switches_istio_default_retries_off() -> None:
    vs, dr = render_mesh(target(Workload.AGENT), ISTIO, policy("inProcess"))
    assert [route["retries"] for route in vs["spec"]["http"]] == [{"attempts": 0}] * 2
    assert "timeout" not in vs["spec"]["http"][1]
    assert "connectionPool" not in dr["spec"]["trafficPolicy"]
    vs, _ = render_mesh(target(Workload.AGENT), ISTIO, None)  # no policy: the same
    assert vs["spec"]["http"][1]["retries"] == {"attempts": 0}


def test_mcp_server_stream_is_never_retried_and_per_try_covers_a_tool_call() -> None:
    mcp = target(Workload.MCP_SERVER, min_per_try_seconds=60.0, connect_timeout_seconds=3.0)
    vs, dr = render_mesh(mcp, ISTIO, policy(attempts=2, perTryTimeoutSeconds=5))
    never, default = vs["spec"]["http"]
    assert never["match"] == [{"method": {"exact": "GET"}}]  # the SSE stream
    assert never["retries"] == {"attempts": 0}
    assert never["timeout"] == "0s"
    assert default["retries"]["perTryTimeout"] == "60s"  # never cuts the runtime's deadline
    assert default["timeout"] == "180s"
    assert dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"] == {"connectTimeout": "3s"}


def test_linkerd_routes() -> None:
    assert render_mesh(target(Workload.AGENT), LINKERD, policy("inProcess")) == []
    retried, never = render_mesh(
        target(Workload.AGENT), LINKERD, policy(attempts=2, perTryTimeoutSeconds=1.5)
    )
    assert retried["apiVersion"] == never["apiVersion"] == "policy.linkerd.io/v1beta3"
    assert retried["kind"] == "HTTPRoute"
    assert retried["metadata"]["name"] == "svc-retried"
    assert retried["metadata"]["annotations"] == {
        "retry.linkerd.io/http": "5xx",  # status classes, not Envoy's retryOn
        "retry.linkerd.io/limit": "2",
        "retry.linkerd.io/timeout": "1500ms",
        "timeout.linkerd.io/request": "4500ms",
    }
    parent = [{"group": "core", "kind": "Service", "name": "svc", "port": 80}]
    assert retried["spec"]["parentRefs"] == never["spec"]["parentRefs"] == parent
    methods = [m["method"] for m in retried["spec"]["rules"][0]["matches"]]
    assert methods == ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
    assert "annotations" not in never["metadata"]
    websocket, event_stream, stream_path = never["spec"]["rules"][0]["matches"][-3:]
    assert event_stream["headers"][0]["name"] == "accept"
    assert stream_path == {"path": {"type": "RegularExpression", "value": "^/.*/stream$"}}
    assert websocket == {
        "path": {"type": "PathPrefix", "value": "/"},
        "method": "GET",
        "headers": [{"type": "Exact", "name": "upgrade", "value": "websocket"}],
    }
    # Gateway API precedence: same prefix, both match a method, more header matches wins.
    with_headers = [m for m in never["spec"]["rules"][0]["matches"] if "headers" in m]
    assert all(m["path"] == {"type": "PathPrefix", "value": "/"} for m in with_headers)


@pytest.mark.parametrize(
    ("retry_on", "codes"),
    [
        ("5xx,reset,connect-failure", "5xx"),
        ("gateway-error,503", "gateway-error,503"),
        ("reset,connect-failure", "5xx"),
        ("500-504,retriable-4xx", "500-504"),
    ],
)
def test_linkerd_status_codes(retry_on: str, codes: str) -> None:
    assert linkerd_status_codes(retry_on) == codes


def test_durations() -> None:
    assert duration(1.5) == "1.5s"
    assert duration(30) == "30s"
    assert duration(0.001) == "0.001s"
    assert millis(2.5) == "2500ms"


def agent_and_server(mode: str) -> tuple[Agent, MCPServer, ResiliencePolicy]:
    agent = Agent.model_validate(
        {
            "metadata": {"name": "helper", "namespace": "ns", "uid": "u1"},
            "spec": {
                "model": {"provider": "fake", "name": "m"},
                "tools": [{"mcpServerRef": {"name": "tools"}}],
                "resiliencePolicyRef": {"name": "p"},
            },
        }
    )
    server = MCPServer.model_validate(
        {
            "metadata": {"name": "tools", "namespace": "ns", "uid": "u2"},
            "spec": {"hosted": {"image": "i"}, "resiliencePolicyRef": {"name": "p"}},
        }
    )
    policy_ = ResiliencePolicy.model_validate(
        {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"mesh": {"retries": mode}}}
    )
    return agent, server, policy_


def mesh_attempts(objects: list[dict[str, Any]], mesh: Mesh) -> int:
    """Retries the mesh makes on the retryable route of a Service."""
    if mesh is Mesh.ISTIO:
        vs = next(o for o in objects if o["kind"] == "VirtualService")
        return int(vs["spec"]["http"][-1]["retries"]["attempts"])
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    limits = [
        int(r["metadata"].get("annotations", {}).get("retry.linkerd.io/limit", 0)) for r in routes
    ]
    return max(limits, default=0)


@pytest.mark.parametrize("mesh", [Mesh.NONE, Mesh.ISTIO, Mesh.LINKERD])
@pytest.mark.parametrize("mode", ["inProcess", "mesh"])
def test_a_hop_is_retried_in_the_mesh_or_in_process_never_both(mesh: Mesh, mode: str) -> None:
    """The rule, end to end through the renderers: the hosted server's mesh objects and the
    calling Agent's runtime config never both retry the agent → MCP server hop."""
    agent, server, policy_ = agent_and_server(mode)
    config = MeshConfig(mesh)
    settings = OperatorSettings()
    hosted = render_hosted_mcp_server(server, policy_, settings, config)
    retried_by_mesh = hop_retried_by_mesh(mesh, policy_.spec)
    rendered = render_agent(
        agent,
        {"tools": server},
        policy_,
        settings,
        mesh=config,
        mesh_retried={"tools"} if retried_by_mesh else set(),
    )
    assert isinstance(rendered, RenderedAgent)
    runtime_retries = not rendered.config.mcp_servers[0].mesh_retries
    mesh_retries = mesh_attempts(hosted.mesh_objects, mesh) > 0 if mesh is not Mesh.NONE else False
    assert runtime_retries != mesh_retries, "exactly one layer retries the hop"
    assert mesh_retries == (mode == "mesh" and mesh is not Mesh.NONE)


def test_runtime_streaming_routes_are_in_the_never_retried_class() -> None:
    """Every streaming route of the runtime (SSE, WebSocket) is matched by the never-retried
    route of the agent's mesh objects (the runtime is read, not copied, so a new stream that
    breaks the convention fails here)."""
    from agentfleet_runtime.app import create_app

    def walk(routes: Any, prefix: str = "") -> Any:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router
                context = route.include_context
                extra = getattr(context, "prefix", "") if context is not None else ""
                yield from walk(route.original_router.routes, prefix + extra)
            else:
                yield prefix + str(getattr(route, "path", "")), route

    streams: list[tuple[str, str]] = []
    for path, route in walk(create_app().routes):
        if type(route).__name__ == "APIWebSocketRoute":
            streams.append(("websocket", path))
        elif "EventSource" in str(getattr(route, "response_class", "")):
            streams.extend((method, path) for method in route.methods)
    assert any(kind == "websocket" for kind, _ in streams)
    assert any(kind != "websocket" for kind, _ in streams)
    vs, _ = render_mesh(target(Workload.AGENT), ISTIO, policy())
    never = vs["spec"]["http"][0]["match"]
    for kind, path in streams:
        if kind == "websocket":
            assert {"headers": {"upgrade": {"exact": "websocket"}}} in never, path
        else:
            assert re.fullmatch(STREAM_PATH_REGEX, path), f"{path}: name SSE routes .../stream"
            assert {"uri": {"regex": STREAM_PATH_REGEX}} in never


def test_mesh_detection_from_discovery() -> None:
    def groups(*pairs: tuple[str, list[str]]) -> dict[str, Any]:
        return {
            "groups": [
                {"name": name, "versions": [{"version": v} for v in versions]}
                for name, versions in pairs
            ]
        }

    istio = groups(("networking.istio.io", ["v1beta1", "v1"]))
    linkerd = groups(("policy.linkerd.io", ["v1beta2", "v1beta3"]))
    both = {"groups": istio["groups"] + linkerd["groups"]}
    assert mesh_from_groups(istio, "auto") == MeshConfig(Mesh.ISTIO, istio_version="v1")
    old = groups(("networking.istio.io", ["v1beta1"]))
    assert mesh_from_groups(old, "auto").istio_version == "v1beta1"
    assert mesh_from_groups(linkerd, "auto") == MeshConfig(Mesh.LINKERD)
    assert mesh_from_groups(both, "auto").mesh is Mesh.ISTIO
    assert mesh_from_groups(both, "linkerd").mesh is Mesh.LINKERD
    assert mesh_from_groups(istio, "none").mesh is Mesh.NONE
    assert mesh_from_groups(groups(), "auto").mesh is Mesh.NONE
    assert mesh_from_groups(groups(), "istio") == MeshConfig(Mesh.ISTIO)  # forced
