"""charts/agentfleet: renders for every values file with the real helm, every object is
valid against the Kubernetes schemas (offline), and what the chart gives the operator and
the runtime pods are settings those programs actually accept."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from delivery_helpers import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUES_FILES,
    Renderer,
    container_env,
    env_values,
    find,
    run,
)
from pydantic import BaseModel

from agentfleet_operator.render.agent import RUNTIME_UID
from agentfleet_operator.settings import ENV_PREFIX, OperatorSettings
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.resilience.options import ResilienceSettings

#: The Kubernetes versions the objects are validated against: the chart's floor
#: (Chart.yaml kubeVersion) and a current one.
OLDEST_KUBERNETES = "1.27.0"
KUBERNETES_VERSION = "1.32.0"
#: Kinds from CRDs that kubernetes-validate has no schema for, and the fields they need.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("groups",),
}
OPERATOR = f"{RELEASE}-operator"

values_params = pytest.mark.parametrize(
    "values", list(VALUES_FILES.values()), ids=list(VALUES_FILES)
)


def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"].get("app.kubernetes.io/name") == "agentfleet-operator"
    ]
    assert len(found) == 1, f"expected one operator Deployment, found {len(found)}"
    return found[0]


@values_params
def test_helm_lint_strict(helm: str, values: Path | None) -> None:
    args = [helm, "lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    result = run(args)
    assert result.returncode == 0, result.stdout + result.stderr


@values_params
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, KUBERNETES_VERSION])
def test_every_object_is_valid_kubernetes(
    render: Renderer, values: Path | None, version: str
) -> None:
    docs = render([values])
    assert docs, "the chart rendered nothing"
    problems: list[str] = []
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in CUSTOM_KINDS:
            missing = [f for f in CUSTOM_KINDS[key] if f not in doc.get("spec", {})]
            if missing:
                problems.append(f"{where}: spec lacks {missing}")
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {key} (add it to CUSTOM_KINDS?)")
    assert not problems, "\n".join(problems)


def test_the_validation_catches_a_bad_object(render: Renderer) -> None:
    """The check above is not a no-op: an unknown field and a wrong type are refused."""
    deployment = copy.deepcopy(operator_deployment(render()))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(operator_deployment(render()))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicie"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@values_params
def test_every_namespaced_object_is_in_the_release_namespace(
    render: Renderer, values: Path | None
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    allowed = {NAMESPACE, "team-a", "team-b", "monitoring"}  # RoleBindings, dashboards
    for doc in render([values]):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert namespace is None, doc["metadata"]
        else:
            assert namespace in allowed, f"{doc['kind']}/{doc['metadata']['name']}: {namespace}"


def test_default_install(render: Renderer) -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",  # operator metrics
            "Service",  # redis
            "StatefulSet",
            "NetworkPolicy",  # operator
            "NetworkPolicy",  # redis
            "PodDisruptionBudget",
        ]
    )
    deployment = operator_deployment(docs)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/agentfleet/operator:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == RUNTIME_UID == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["serviceAccountName"] == OPERATOR


#: What the Secrets hold, for variables the chart takes from a Secret.
SECRET_VALUES = {"AGENTFLEET_REDIS_URL": "rediss://:s3cret@redis.example.internal:6380/0"}


def operator_settings(deployment: dict[str, Any]) -> OperatorSettings:
    env = env_values(deployment, resolve=lambda item: SECRET_VALUES.get(item["name"], "s3cret"))
    return OperatorSettings.from_env(env)


@values_params
def test_the_operator_accepts_its_settings(render: Renderer, values: Path | None) -> None:
    """Every AGENTFLEET_OPERATOR_* variable the chart sets is one the operator reads, and
    OperatorSettings.from_env accepts the values (the operator would exit otherwise)."""
    deployment = operator_deployment(render([values]))
    known = {name.upper() for name in OperatorSettings.model_fields}
    for item in container_env(deployment):
        if item["name"].startswith(ENV_PREFIX):
            field = item["name"].removeprefix(ENV_PREFIX)
            assert field in known, f"the operator has no setting {item['name']}"
    settings = operator_settings(deployment)
    assert settings.health_address == "0.0.0.0:8080"
    assert settings.runtime_image.startswith("ghcr.io/agentfleet/runtime")
    assert settings.mcp_bridge_image.startswith("ghcr.io/agentfleet/mcp-bridge")


def _setting_exists(model: type[BaseModel], path: list[str]) -> bool:
    """Does ``a__b__c`` name a (nested) field of ``model``? Names are matched in lower case."""
    head, *rest = path
    fields = {name.lower(): info for name, info in model.model_fields.items()}
    aliases = {str(info.alias).lower(): info for info in model.model_fields.values() if info.alias}
    info = fields.get(head) or aliases.get(head)
    if info is None:
        return False
    if not rest:
        return True
    annotation = info.annotation
    return (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and _setting_exists(annotation, rest)
    )


@values_params
def test_the_runtime_accepts_what_the_chart_gives_it(
    render: Renderer, values: Path | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime env (AGENTFLEET_OPERATOR_RUNTIME_ENV) names real runtime settings, and
    RuntimeSettings / ResilienceSettings accept the values."""
    settings = operator_settings(operator_deployment(render([values])))
    resilience: dict[str, Any] = {}
    for name, value in settings.runtime_env.items():
        assert name.startswith("AGENTFLEET_"), name
        path = name.removeprefix("AGENTFLEET_").lower().split("__")
        if path[0] == "resilience":  # ResilienceSettings (AGENTFLEET_RESILIENCE__*)
            assert _setting_exists(ResilienceSettings, path[1:]), f"no runtime setting {name}"
            node = resilience
            for part in path[1:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        else:
            assert _setting_exists(RuntimeSettings, path), f"no runtime setting {name}"
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGENTFLEET_ENVIRONMENT", settings.runtime_environment)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env file
    runtime = RuntimeSettings()
    ResilienceSettings.model_validate(resilience)
    backend = settings.runtime_env["AGENTFLEET_STATE__BACKEND"]
    assert runtime.state.backend == backend
    if backend == "redis":
        assert runtime.state.redis_url.startswith(("redis://", "rediss://"))
        assert "$(" not in runtime.state.redis_url


def test_redis_password_reaches_the_runtime_through_an_earlier_variable(
    render: Renderer,
) -> None:
    """Kubernetes expands $(VAR) only for variables defined earlier in the list."""
    docs = render([ROOT / "deploy" / "values" / "staging.yaml"])
    env = container_env(operator_deployment(docs))
    names = [item["name"] for item in env]
    assert names.index("AGENTFLEET_REDIS_PASSWORD") < names.index("AGENTFLEET_OPERATOR_RUNTIME_ENV")
    settings = operator_settings(operator_deployment(docs))
    assert settings.runtime_env["AGENTFLEET_STATE__REDIS_URL"] == (
        f"redis://:s3cret@agentfleet-redis.{NAMESPACE}.svc.cluster.local:6379/0"
    )
    redis = find(docs, "StatefulSet", "agentfleet-redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"


def test_external_redis_url_from_a_secret(render: Renderer) -> None:
    docs = render([ROOT / "deploy" / "values" / "production.yaml"])
    assert not [d for d in docs if d["kind"] == "StatefulSet"], "no bundled Redis"
    env = container_env(operator_deployment(docs))
    names = [item["name"] for item in env]
    secret = env[names.index("AGENTFLEET_REDIS_URL")]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "agentfleet-redis-url", "key": "url"}
    assert names.index("AGENTFLEET_REDIS_URL") < names.index("AGENTFLEET_OPERATOR_RUNTIME_ENV")


def test_memory_backend_has_no_redis(render: Renderer) -> None:
    docs = render(sets=["state.backend=memory"])
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    assert not [d for d in docs if d["metadata"]["name"].endswith("-redis")]
    settings = operator_settings(operator_deployment(docs))
    assert settings.runtime_env["AGENTFLEET_STATE__BACKEND"] == "memory"
    assert "AGENTFLEET_STATE__REDIS_URL" not in settings.runtime_env


@pytest.mark.parametrize("mode", ["none", "auto", "istio", "linkerd"])
def test_mesh_mode_reaches_the_operator(render: Renderer, mode: str) -> None:
    settings = operator_settings(operator_deployment(render(sets=[f"mesh.mode={mode}"])))
    assert settings.mesh == mode


def test_feature_flags_reach_every_runtime(render: Renderer) -> None:
    docs = render(
        sets=["runtime.featureFlags.circuitBreaker=false", "runtime.featureFlags.retry=true"]
    )
    env = operator_settings(operator_deployment(docs)).runtime_env
    assert env["AGENTFLEET_RESILIENCE__FLAGS__CIRCUIT_BREAKER"] == "false"
    assert env["AGENTFLEET_RESILIENCE__FLAGS__RETRY"] == "true"


def test_namespaced_install_binds_only_the_watched_namespaces(render: Renderer) -> None:
    docs = render([ROOT / "tests" / "delivery" / "values" / "namespaced.yaml"])
    settings = operator_settings(operator_deployment(docs))
    assert settings.namespaces == ("team-a", "team-b")
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    by_namespace = {d["metadata"]["namespace"]: d["roleRef"]["name"] for d in bindings}
    assert by_namespace == {
        "team-a": "fleet-operator",
        "team-b": "fleet-operator",
        NAMESPACE: "fleet-operator-leader-election",
    }
    cluster_bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in cluster_bindings] == ["fleet-operator-cluster-scoped"]
    monitor = find(docs, "ServiceMonitor", "fleet-agents")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_replicas_need_leader_election_and_spread(render: Renderer) -> None:
    docs = render([ROOT / "deploy" / "values" / "production.yaml"])
    deployment = operator_deployment(docs)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert operator_settings(deployment).leader_election is True
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_notes_tell_the_next_command(helm: str) -> None:
    result = run(
        [helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{OPERATOR}" in notes
    assert "kubectl -n agents wait agent/demo --for=condition=Ready" in notes


def test_the_chart_crds_are_valid_kubernetes() -> None:
    crds = sorted((CHART / "crds").glob("*.yaml"))
    assert len(crds) == 4
    for path in crds:
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
        assert crd["spec"]["group"] == "agentfleet.dev"


def test_the_chart_floor_is_the_validated_one(helm: str) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["kubeVersion"] == f">={OLDEST_KUBERNETES}-0"
    result = run([helm, "template", RELEASE, str(CHART), "--kube-version", OLDEST_KUBERNETES])
    assert result.returncode == 0, result.stderr
    too_old = run([helm, "template", RELEASE, str(CHART), "--kube-version", "1.26.0"])
    assert too_old.returncode != 0
