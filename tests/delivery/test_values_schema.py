"""values.schema.json: helm itself refuses bad values, with the field named, before
anything reaches a cluster; and the schema's lists match the code they configure."""

from __future__ import annotations

import json
import re

import pytest
from delivery_helpers import CHART, Renderer

from agentfleet_runtime.resilience.options import FeatureFlags

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))

#: (--set arguments, the path helm must name in its error)
BAD_VALUES = [
    (["mesh.mode=consul"], "/mesh/mode"),
    (["operator.replicas=-1"], "/operator/replicas"),
    (
        ["operator.replicas=2", "operator.leaderElection.enabled=false"],
        "/operator/leaderElection/enabled",
    ),
    (["operator.workers=0"], "/operator/workers"),
    (["operator.logLevel=trace"], "/operator/logLevel"),
    (["operator.watchNamespaces[0]=Team_A"], "/operator/watchNamespaces/0"),
    (["operator.image.digest=sha256:abc"], "/operator/image/digest"),
    (["operator.image.tag=bad tag"], "/operator/image/tag"),
    (["operator.resources.requests.cpu=lots"], "/operator/resources/requests/cpu"),
    (["operator.resources.requests.gpu=1"], "/operator/resources/requests"),
    (["runtime.environment=prod"], "/runtime/environment"),
    (["runtime.featureFlags.retrys=false"], "/runtime/featureFlags"),
    (["runtime.env.AGENTFLEET_ENVIRONMENT=development"], "propertyName"),
    (["runtime.env.BAD-NAME=x"], "propertyName"),
    (["runtime.env.EXTRA=a\\,b"], "/runtime/env/EXTRA"),
    (["state.backend=postgres"], "/state/backend"),
    (["redis.mode=cluster"], "/redis/mode"),
    (["redis.mode=external"], "/redis/external"),
    (
        ["redis.mode=external", "redis.external.url=redis://user:pw@host:6379/0"],
        "/redis/external/url",
    ),
    (["redis.bundled.auth.enabled=true"], "/redis/bundled/auth/existingSecret"),
    (["networkPolicy.egress.enabled=true"], "/networkPolicy/egress/apiServerCIDRs"),
    (["metrics.serviceMonitor.interval=often"], "/metrics/serviceMonitor/interval"),
    (["replicaCount=3"], "additional properties 'replicaCount'"),
    (["operator.replica=2"], "additional properties 'replica'"),
]


@pytest.mark.parametrize(("sets", "path"), BAD_VALUES, ids=[" ".join(s) for s, _ in BAD_VALUES])
def test_bad_values_are_refused(render: Renderer, sets: list[str], path: str) -> None:
    result = render.run(sets=sets)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert path in result.stderr, result.stderr


def test_feature_flags_are_the_runtimes(render: Renderer) -> None:
    """The schema's flags are FeatureFlags' fields, in camelCase."""
    flags = SCHEMA["properties"]["runtime"]["properties"]["featureFlags"]["properties"]
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in flags}
    assert snake == set(FeatureFlags.model_fields)


def test_fixed_runtime_variables_cannot_be_overridden() -> None:
    """runtime.env may not set what the operator or the chart sets on runtime containers
    (the operator would silently drop it)."""
    from agentfleet_operator.render.agent import _runtime_env
    from agentfleet_operator.settings import OperatorSettings

    fixed = {item["name"] for item in _runtime_env(OperatorSettings())}
    names = SCHEMA["properties"]["runtime"]["properties"]["env"]["propertyNames"]["allOf"][1]
    refused = set(names["not"]["enum"])
    assert fixed <= refused
    assert {"AGENTFLEET_STATE__BACKEND", "AGENTFLEET_STATE__REDIS_URL"} <= refused


def test_mesh_modes_are_the_operators() -> None:
    from typing import get_args

    from agentfleet_operator.settings import MeshSetting

    assert set(SCHEMA["properties"]["mesh"]["properties"]["mode"]["enum"]) == set(
        get_args(MeshSetting)
    )
