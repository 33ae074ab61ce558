"""Operator settings from the environment, and the console script's flags."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet_operator.main import parse_args, settings_from
from agentfleet_operator.settings import DEFAULT_RUNTIME_IMAGE, OperatorSettings


def test_defaults() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.runtime_image == DEFAULT_RUNTIME_IMAGE == "ghcr.io/agentfleet/runtime:0.1.0"
    assert settings.clusterwide
    assert settings.cluster_domain == "cluster.local"
    assert settings.runtime_environment == "production"
    assert settings.standalone
    assert settings.kube_api_server is None


def test_from_env() -> None:
    settings = OperatorSettings.from_env(
        {
            "AGENTFLEET_OPERATOR_RUNTIME_IMAGE": "registry.local/runtime:dev",
            "AGENTFLEET_OPERATOR_NAMESPACES": "team-a, team-b,",
            "AGENTFLEET_OPERATOR_RUNTIME_ENV": "AGENTFLEET_REDIS_URL=redis://r:6379/0,X=a=b",
            "AGENTFLEET_OPERATOR_DEPENDENCY_RETRY_SECONDS": "5",
            "AGENTFLEET_OPERATOR_KUBE_API_SERVER": "http://127.0.0.1:8001",
            "AGENTFLEET_OPERATOR_STANDALONE": "false",
            "UNRELATED": "x",
        }
    )
    assert settings.runtime_image == "registry.local/runtime:dev"
    assert settings.namespaces == ("team-a", "team-b")
    assert not settings.clusterwide
    assert settings.runtime_env == {"AGENTFLEET_REDIS_URL": "redis://r:6379/0", "X": "a=b"}
    assert settings.dependency_retry_seconds == 5
    assert settings.kube_api_server == "http://127.0.0.1:8001"
    assert not settings.standalone


@pytest.mark.parametrize(
    "environ",
    [
        {"AGENTFLEET_OPERATOR_KUBE_INSECURE": "true"},  # insecure needs an explicit server
        {"AGENTFLEET_OPERATOR_NAMESPACES": "Team_A"},
        {"AGENTFLEET_OPERATOR_RUNTIME_ENV": "NOVALUE"},
        {"AGENTFLEET_OPERATOR_RUNTIME_ENVIRONMENT": "prod"},
    ],
)
def test_refuses_bad_values(environ: dict[str, str]) -> None:
    with pytest.raises((ValidationError, ValueError)):
        OperatorSettings.from_env(environ)


def test_cli_namespaces_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_OPERATOR_NAMESPACES", "team-a")
    assert settings_from(parse_args([])).namespaces == ("team-a",)
    assert settings_from(parse_args(["-n", "x", "--namespace", "y"])).namespaces == ("x", "y")
    assert settings_from(parse_args(["--all-namespaces"])).clusterwide
    args = parse_args(["--liveness", "http://0.0.0.0:9090/healthz"])
    assert args.liveness_endpoint == "http://0.0.0.0:9090/healthz"
    assert parse_args([]).liveness_endpoint == ""
    assert settings_from(parse_args(["--health-address", ""])).health_address == ""
    assert settings_from(parse_args([])).health_address == "0.0.0.0:8080"


def test_operator_settings_from_env() -> None:
    settings = OperatorSettings.from_env(
        {
            "AGENTFLEET_OPERATOR_MESH": "linkerd",
            "AGENTFLEET_OPERATOR_WORKERS": "3",
            "AGENTFLEET_OPERATOR_LEADER_ELECTION": "false",
            "POD_NAMESPACE": "agentfleet-system",
            "POD_NAME": "op-1",
        }
    )
    assert settings.mesh == "linkerd"
    assert settings.workers == 3
    assert not settings.leader_election
    assert settings.lease_namespace == "agentfleet-system"
    assert settings.pod_name == "op-1"
    assert OperatorSettings(namespaces=("team-a",)).lease_namespace == "team-a"
    with pytest.raises(ValidationError):
        OperatorSettings.from_env({"AGENTFLEET_OPERATOR_MESH": "consul"})
