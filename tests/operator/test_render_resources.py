"""Pure renders beyond the Agent: hosted MCPServers, SecretBindings, and the name rules
that keep derived names valid Kubernetes names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentfleet_crds.v1alpha1 import Agent, MCPServer, SecretBinding
from agentfleet_operator.render.mcpserver import (
    InvalidHostedServerError,
    render_hosted_mcp_server,
)
from agentfleet_operator.render.mesh import Mesh, MeshConfig
from agentfleet_operator.render.secrets import bound_secrets
from agentfleet_operator.settings import OperatorSettings


def server(name: str = "files", **hosted: Any) -> MCPServer:
    return MCPServer.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns", "uid": "u"},
            "spec": {"hosted": {"image": "img:1", **hosted}},
        }
    )


def binding(name: str, provider: str, agents: list[str], secrets: list[dict[str, Any]]) -> Any:
    return SecretBinding.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"provider": provider, "agents": agents, "secrets": secrets},
        }
    )


def test_hosted_streamable_http_server_runs_as_is() -> None:
    rendered = render_hosted_mcp_server(
        server(command=["serve"], args=["--port", "8080"]), None, OperatorSettings()
    )
    assert rendered.url == "http://files-mcp.ns.svc.cluster.local:8080/mcp"
    pod = rendered.deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    (container,) = pod["containers"]
    assert container["command"] == ["serve"]
    assert container["args"] == ["--port", "8080"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert rendered.deployment["metadata"]["ownerReferences"][0]["kind"] == "MCPServer"
    assert (
        rendered.service["spec"]["selector"]
        == rendered.deployment["spec"]["selector"]["matchLabels"]
    )
    assert rendered.mesh_objects == []
    assert rendered.absent == []


def test_hosted_stdio_server_needs_a_command_to_bridge() -> None:
    with pytest.raises(InvalidHostedServerError, match="command"):
        render_hosted_mcp_server(server(transport="stdio"), None, OperatorSettings())


def test_mesh_objects_of_a_switched_off_mesh_are_listed_as_absent() -> None:
    rendered = render_hosted_mcp_server(
        server(), None, OperatorSettings(), MeshConfig(Mesh.LINKERD)
    )
    assert rendered.mesh_objects == []  # in-process retries: Linkerd needs no route
    assert {(ref.kind, ref.name) for ref in rendered.absent} == {
        ("HTTPRoute", "files-mcp-retried"),
        ("HTTPRoute", "files-mcp-never-retried"),
    }


def test_bound_secrets() -> None:
    k8s = binding(
        "a-k8s",
        "kubernetes",
        ["helper"],
        [
            {"name": "token", "kubernetes": {"secretName": "crm", "key": "t"}},
            {"name": "other", "kubernetes": {"secretName": "crm", "key": "o"}},
        ],
    )
    vault = binding(
        "b-vault",
        "vault",
        ["helper", "else"],
        [
            {"name": "token", "remote": {"key": "kv/data/x"}},  # shadowed by a-k8s
            {"name": "db", "remote": {"key": "kv/data/db", "property": "password"}},
        ],
    )
    unrelated = binding("c", "aws", ["else"], [{"name": "n", "remote": {"key": "arn"}}])
    bound = bound_secrets("helper", [vault, unrelated, k8s])
    assert sorted(bound.secrets) == ["db", "other", "token"]
    assert bound.secrets["token"].file == "/var/run/agentfleet/secrets/crm/t"
    assert bound.secrets["token"].binding == "a-k8s"
    assert bound.secrets["db"].key == "kv/data/db"
    assert bound.secrets["db"].property == "password"
    assert bound.mounts == {"crm": {"t", "o"}}
    assert bound.shadowed == ["b-vault/token"]


@pytest.mark.parametrize("name", ["2agent", "0", "Agent", "a_b", "a" * 64])
def test_agent_names_must_make_valid_service_names(name: str) -> None:
    with pytest.raises(ValidationError):
        Agent.model_validate(
            {"metadata": {"name": name}, "spec": {"model": {"provider": "fake", "name": "m"}}}
        )


def test_mcp_server_names_leave_room_for_the_service_suffix() -> None:
    assert server("s" * 59).metadata.name == "s" * 59  # "<name>-mcp" is 63 characters
    with pytest.raises(ValidationError):
        server("s" * 60)
    with pytest.raises(ValidationError):
        server("9lives")
