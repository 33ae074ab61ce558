"""The generated schemas are structural, and the JSON schema → OpenAPI conversion does what
Kubernetes needs (and refuses what it cannot express)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from agentfleet_crds.schema import (
    SchemaError,
    apply_defaults,
    model_schema,
    normalize_description,
    structural_problems,
    walk,
)
from agentfleet_crds.v1alpha1.common import CamelModel

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "const", "title"}


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node, found independently of ``schema.walk``."""
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_schemas_are_structural(crd_schemas: dict[str, dict[str, Any]]) -> None:
    assert set(crd_schemas) == {"Agent", "MCPServer", "ResiliencePolicy", "SecretBinding"}
    for kind, schema in crd_schemas.items():
        assert structural_problems(schema) == [], kind
        nodes = _nodes(schema)
        assert len(nodes) > 20, kind
        for path, node in nodes:
            where = f"{kind}{path}"
            assert node.get("type") in {
                "object",
                "array",
                "string",
                "integer",
                "number",
                "boolean",
            }, where
            assert not FORBIDDEN & set(node), where
            assert not ("properties" in node and "additionalProperties" in node), where
            assert node.get("additionalProperties") is not False, where
            if node["type"] == "array":
                assert isinstance(node.get("items"), dict), where
            for key in ("exclusiveMinimum", "exclusiveMaximum"):
                if key in node:
                    assert node[key] is True, where
                    assert ("minimum" if key == "exclusiveMinimum" else "maximum") in node, where
            assert "nullable" not in node, f"{where}: nothing needs null here"


def test_committed_yaml_has_no_json_schema_leftovers() -> None:
    for path in (REPO / "crds" / "manifests").glob("*.agentfleet.dev.yaml"):
        text = path.read_text()
        for word in ("$ref", "$defs", "anyOf", "title:", "const:"):
            assert word not in text, f"{path.name} contains {word}"


def test_exclusive_minimum_uses_the_openapi_v30_boolean_form(
    crd_schemas: dict[str, dict[str, Any]],
) -> None:
    model = crd_schemas["Agent"]["properties"]["spec"]["properties"]["model"]
    assert model["properties"]["timeoutSeconds"] == {
        "default": 60.0,
        "description": "Per-request timeout.",
        "exclusiveMinimum": True,
        "maximum": 3600,
        "minimum": 0,
        "type": "number",
    }


def test_optional_fields_are_not_required_and_not_nullable(
    crd_schemas: dict[str, dict[str, Any]],
) -> None:
    model = crd_schemas["Agent"]["properties"]["spec"]["properties"]["model"]
    assert model["required"] == ["name", "provider"]
    assert model["properties"]["baseUrl"] == {
        "description": "API base URL; for OpenAI-compatible servers such as vLLM or Ollama.",
        "maxLength": 2048,
        "pattern": "^https?://",
        "type": "string",
    }
    ref = model["properties"]["apiKeySecretRef"]
    assert ref["type"] == "object"
    assert ref["required"] == ["key", "name"]
    assert ref["description"].startswith("Secret key holding the API key")


def test_defaults_appear_in_the_schema(crd_schemas: dict[str, dict[str, Any]]) -> None:
    spec = crd_schemas["Agent"]["properties"]["spec"]
    props = spec["properties"]
    assert props["maxSteps"]["default"] == 8
    assert props["systemPrompt"]["default"] == "You are a helpful assistant."
    assert props["tools"]["default"] == []
    deployment = props["deployment"]
    assert deployment["default"] == {}  # the nested defaults fill it in
    resources = deployment["properties"]["resources"]["properties"]
    assert resources["requests"]["default"] == {"cpu": "100m", "memory": "256Mi"}
    assert resources["limits"]["default"] == {"memory": "1Gi"}
    assert deployment["properties"]["imagePullPolicy"]["default"] == "IfNotPresent"

    policy = crd_schemas["ResiliencePolicy"]
    assert "required" not in policy  # the whole spec has a default
    policy_props = policy["properties"]["spec"]["properties"]
    assert policy["properties"]["spec"]["default"] == {}
    # Factory defaults that differ from the nested model's own defaults are kept, minimally.
    assert policy_props["llm"]["default"] == {
        "retry": {"baseDelaySeconds": 1.0},
        "timeoutSeconds": 120.0,
    }
    assert policy_props["database"]["default"] == {
        "retry": {"baseDelaySeconds": 0.05, "maxDelaySeconds": 1.0},
        "timeoutSeconds": 2.0,
    }
    assert policy_props["http"]["default"] == {}
    retry = policy_props["http"]["properties"]["retry"]["properties"]
    assert retry["retryOn"]["default"] == [
        "rateLimited",
        "timeout",
        "connection",
        "overloaded",
        "serverError",
    ]


def test_api_server_defaulting_of_an_empty_policy_equals_the_model_defaults(
    crd_schemas: dict[str, dict[str, Any]],
) -> None:
    from agentfleet_crds.v1alpha1 import ResiliencePolicySpec

    defaulted = apply_defaults({"metadata": {"name": "p"}}, crd_schemas["ResiliencePolicy"])
    assert defaulted["spec"] == ResiliencePolicySpec().to_manifest()


# --- the converter on models made for the purpose ------------------------------------------


class _Inner(CamelModel):
    """An inner model.

    With a second paragraph and ``literals``."""

    size: int = Field(default=3, ge=1)


class _Outer(CamelModel):
    when: datetime
    ratio: float = Field(gt=0, lt=1)
    labels: dict[str, str] = Field(default_factory=dict)
    inner: _Inner = Field(default_factory=lambda: _Inner(size=5))
    maybe: int | None = 7
    pick: str = Field(default="a", json_schema_extra={"enum": ["a", "b"]})


def test_converter_handles_each_json_schema_form() -> None:
    schema = model_schema(_Outer)
    props = schema["properties"]
    assert props["when"] == {"format": "date-time", "type": "string"}
    assert props["ratio"] == {
        "exclusiveMaximum": True,
        "exclusiveMinimum": True,
        "maximum": 1,
        "minimum": 0,
        "type": "number",
    }
    assert props["labels"] == {
        "additionalProperties": {"type": "string"},
        "default": {},
        "type": "object",
    }
    assert props["inner"]["default"] == {"size": 5}
    assert props["inner"]["description"] == (
        "An inner model.\n\nWith a second paragraph and `literals`."
    )
    # null is needed only where it differs from the default
    assert props["maybe"] == {"default": 7, "nullable": True, "type": "integer"}
    assert props["pick"] == {"default": "a", "enum": ["a", "b"], "type": "string"}
    assert schema["required"] == ["ratio", "when"]
    assert structural_problems(schema) == []


def test_preserve_unknown_fields_for_free_form_objects() -> None:
    class Free(BaseModel):
        data: dict[str, Any]

    assert model_schema(Free)["properties"]["data"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_unions_of_two_types_are_refused_naming_the_field() -> None:
    class Either(CamelModel):
        count_or_name: int | str

    with pytest.raises(SchemaError, match="countOrName: a union of 2 types"):
        model_schema(Either)


class _Node(CamelModel):
    children: list[_Node] = Field(default_factory=list)


def test_recursive_models_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"children\[\]: model _Node contains itself"):
        model_schema(_Node)


def test_unknown_keywords_are_refused() -> None:
    class Odd(BaseModel):
        x: int = Field(examples=[1, 2])

    with pytest.raises(SchemaError, match="x: JSON schema keyword 'examples'"):
        model_schema(Odd)


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {}}}, "a: no type"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "keyword '$ref'"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "additionalProperties": {"type": "string"},
            },
            "additionalProperties together with properties",
        ),
        ({"type": "array"}, "an array without items"),
        (
            {"type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": 0}}},
            "n: exclusiveMinimum must be a boolean",
        ),
        (
            {"type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": True}}},
            "n: exclusiveMinimum without minimum",
        ),
        ({"type": "object", "properties": {}, "required": ["a"]}, "unknown properties ['a']"),
        (
            {
                "type": "object",
                "properties": {"s": {"type": "string", "enum": ["a"], "default": "b"}},
            },
            "s: default 'b' is not in the enum",
        ),
        (
            {"type": "object", "x-kubernetes-validations": [{"rule": "true", "msg": "x"}]},
            "unknown keys ['msg']",
        ),
        (
            {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"],
            },
            "list map key 'k' must be required or defaulted",
        ),
        (
            {"type": "object", "properties": {"metadata": {"type": "object", "description": "x"}}},
            "metadata: only type and name/generateName",
        ),
        ({"type": "object", "properties": {"a": {"type": "int"}}}, "a: unknown type 'int'"),
    ],
)
def test_structural_problems_are_reported(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


def test_walk_visits_items_and_map_values() -> None:
    schema = model_schema(_Outer)
    paths = [path for path, _ in walk(schema)]
    assert "labels{}" in paths
    assert "inner.size" in paths


def test_normalize_description_joins_wrapped_lines() -> None:
    assert normalize_description("One\n  two ``x``.\n\n  Three.\n") == "One two `x`.\n\nThree."
