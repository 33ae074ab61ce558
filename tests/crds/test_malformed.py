"""Malformed manifests are refused by the models (the loader's error names the field) and by
the CRD schema the API server enforces (the error path names the field)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_crds.manifests import ManifestError, parse_resource

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(file: str, kind: str, name: str) -> dict[str, Any]:
    for document in yaml.safe_load_all((EXAMPLES / file).read_text()):
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return dict(document)
    raise LookupError(f"{file}: no {kind}/{name}")


def _agent() -> dict[str, Any]:
    return _example("support-agent.yaml", "Agent", "support")


def _hosted() -> dict[str, Any]:
    return _example("support-agent.yaml", "MCPServer", "kb-search")


def _remote() -> dict[str, Any]:
    return _example("support-agent.yaml", "MCPServer", "crm")


def _policy() -> dict[str, Any]:
    return _example("resilience-policy.yaml", "ResiliencePolicy", "standard")


def _binding() -> dict[str, Any]:
    return _example("secret-binding.yaml", "SecretBinding", "support-credentials")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _parse(path)
        node: Any = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _parse(path)
        node: Any = doc
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _all(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


def _parse(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes)
    return parts


@dataclass(frozen=True)
class Case:
    id: str
    base: Callable[[], dict[str, Any]]
    mutate: Callable[[dict[str, Any]], None]
    model_path: str  #: where the model's error points
    model_says: str  #: part of the model's message
    schema_path: str  #: where the API server's error points
    schema_says: str = ""
    cel: bool = False  #: only a CEL rule catches it in the API server


CASES = [
    Case(
        "bad-enum",
        _agent,
        _set("spec.model.provider", "gemini"),
        "spec.model.provider",
        "'anthropic', 'openai' or 'fake'",
        "spec.model.provider",
        "is not one of",
    ),
    Case(
        "bad-enum-in-list",
        _policy,
        _set("spec.llm.retry.retryOn[1]", "sometimes"),
        "spec.llm.retry.retryOn[1]",
        "rateLimited",
        "spec.llm.retry.retryOn[1]",
        "is not one of",
    ),
    Case(
        "out-of-range-integer",
        _agent,
        _set("spec.maxSteps", 0),
        "spec.maxSteps",
        "greater than or equal to 1",
        "spec.maxSteps",
        "less than the minimum",
    ),
    Case(
        "out-of-range-number",
        _agent,
        _set("spec.fallbackModels[0].temperature", 2.5),
        "spec.fallbackModels[0].temperature",
        "less than or equal to 2",
        "spec.fallbackModels[0].temperature",
        "greater than the maximum",
    ),
    Case(
        "exclusive-minimum",
        _agent,
        _set("spec.model.timeoutSeconds", 0),
        "spec.model.timeoutSeconds",
        "greater than 0",
        "spec.model.timeoutSeconds",
        "less than or equal to the minimum",
    ),
    Case(
        "too-many-items",
        _agent,
        _set("spec.fallbackModels", [{"provider": "fake", "name": f"m{i}"} for i in range(6)]),
        "spec.fallbackModels",
        "at most 5 items",
        "spec.fallbackModels",
        "is too long",
    ),
    Case(
        "missing-required",
        _agent,
        _delete("spec.model.provider"),
        "spec.model.provider",
        "Field required",
        "spec.model.provider",
        "Required value",
    ),
    Case(
        "missing-required-list",
        _binding,
        _delete("spec.agents"),
        "spec.agents",
        "Field required",
        "spec.agents",
        "Required value",
    ),
    Case(
        "empty-list",
        _binding,
        _set("spec.secrets", []),
        "spec.secrets",
        "at least 1 item",
        "spec.secrets",
        "should be non-empty",
    ),
    Case(
        "unknown-field",
        _agent,
        _set("spec.model.providr", "anthropic"),
        "spec.model.providr",
        "Extra inputs are not permitted",
        "spec.model.providr",
        "unknown field",
    ),
    Case(
        "unknown-field-deep",
        _hosted,
        _set("spec.hosted.env[0].valueFrom", {"x": 1}),
        "spec.hosted.env[0].valueFrom",
        "Extra inputs are not permitted",
        "spec.hosted.env[0].valueFrom",
        "unknown field",
    ),
    Case(
        "bad-reference-name",
        _agent,
        _set("spec.tools[0].mcpServerRef.name", "CRM_Server"),
        "spec.tools[0].mcpServerRef.name",
        "String should match pattern",
        "spec.tools[0].mcpServerRef.name",
        "does not match",
    ),
    Case(
        "bad-secret-key",
        _remote,
        _set("spec.headers[0].secretKeyRef.key", "a key/with spaces"),
        "spec.headers[0].secretKeyRef.key",
        "String should match pattern",
        "spec.headers[0].secretKeyRef.key",
        "does not match",
    ),
    Case(
        "bad-url",
        _remote,
        _set("spec.url", "crm-mcp.internal:8080"),
        "spec.url",
        "String should match pattern",
        "spec.url",
        "does not match",
    ),
    Case(
        "bad-metadata-name",
        _agent,
        _set("metadata.name", "Support_Agent"),
        "metadata.name",
        "String should match pattern",
        "<root>",
        "metadata.name must be a DNS label",
        cel=True,
    ),
    Case(
        "two-mcp-shapes",
        _remote,
        _set("spec.stdio", {"command": "crm-mcp"}),
        "spec",
        "exactly one of url, hosted or stdio",
        "spec",
        "exactly one of url, hosted or stdio",
        cel=True,
    ),
    Case(
        "no-mcp-shape",
        _remote,
        _delete("spec.url"),
        "spec",
        "exactly one of url, hosted or stdio",
        "spec",
        "exactly one of url, hosted or stdio",
        cel=True,
    ),
    Case(
        "env-value-and-secret",
        _hosted,
        _set("spec.hosted.env[1].value", "inline"),
        "spec.hosted.env[1]",
        "exactly one of value or secretKeyRef",
        "spec.hosted.env[1]",
        "exactly one of value or secretKeyRef",
        cel=True,
    ),
    Case(
        "env-neither",
        _hosted,
        _delete("spec.hosted.env[0].value"),
        "spec.hosted.env[0]",
        "exactly one of value or secretKeyRef",
        "spec.hosted.env[0]",
        "exactly one of value or secretKeyRef",
        cel=True,
    ),
    Case(
        "autoscaling-min-above-max",
        _agent,
        _set("spec.deployment.autoscaling.minReplicas", 11),
        "spec.deployment.autoscaling",
        "minReplicas must be <= maxReplicas",
        "spec.deployment.autoscaling.minReplicas",
        "minReplicas must be <= maxReplicas",
        cel=True,
    ),
    Case(
        "autoscaling-min-above-defaulted-max",
        _agent,
        _all(
            _delete("spec.deployment.autoscaling.maxReplicas"),  # defaults to 5
            _set("spec.deployment.autoscaling.minReplicas", 7),
        ),
        "spec.deployment.autoscaling",
        "minReplicas must be <= maxReplicas",
        "spec.deployment.autoscaling.minReplicas",
        "minReplicas must be <= maxReplicas",
        cel=True,
    ),
    Case(
        "retry-base-above-max",
        _policy,
        _set("spec.http.retry.baseDelaySeconds", 5),
        "spec",
        "http.retry.baseDelaySeconds must be <= maxDelaySeconds",
        "spec.http.retry.baseDelaySeconds",
        "baseDelaySeconds must be <= maxDelaySeconds",
        cel=True,
    ),
    Case(
        "retry-base-above-defaulted-max",
        _policy,
        _set("spec.database", {"retry": {"baseDelaySeconds": 45}}),
        "spec",
        "database.retry.baseDelaySeconds must be <= maxDelaySeconds",
        "spec.database.retry.baseDelaySeconds",
        "baseDelaySeconds must be <= maxDelaySeconds",
        cel=True,
    ),
    Case(
        "bound-secret-two-sources",
        _binding,
        _set("spec.secrets[0].remote", {"key": "arn:aws:secretsmanager:x"}),
        "spec.secrets[0]",
        "exactly one of kubernetes or remote",
        "spec.secrets[0]",
        "exactly one of kubernetes or remote",
        cel=True,
    ),
    Case(
        "source-does-not-match-provider",
        _binding,
        _set("spec.provider", "aws"),
        "spec",
        "provider aws needs a remote source",
        "spec",
        "a remote source otherwise",
        cel=True,
    ),
]


def _build(case: Case) -> dict[str, Any]:
    document = copy.deepcopy(case.base())
    case.mutate(document)
    return document


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_unmodified_base_is_valid(case: Case, admission: Any) -> None:
    document = case.base()
    parse_resource(document)
    assert admission.errors(document) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_models_refuse_naming_the_field(case: Case) -> None:
    with pytest.raises(ManifestError) as excinfo:
        parse_resource(_build(case), "bad.yaml")
    problems = excinfo.value.problems
    assert any(p.startswith(f"{case.model_path}: ") and case.model_says in p for p in problems), (
        problems
    )
    assert str(excinfo.value).startswith("bad.yaml (")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_crd_schema_refuses_naming_the_field(case: Case, admission: Any) -> None:
    if case.cel and admission.cel is None:
        pytest.skip("only a CEL rule catches this; cel-python is not installed")
    errors = admission.errors(_build(case))
    assert any(e.startswith(f"{case.schema_path}: ") and case.schema_says in e for e in errors), (
        errors
    )


@pytest.mark.parametrize("case", [c for c in CASES if c.cel], ids=lambda c: c.id)
def test_cel_only_cases_pass_the_plain_schema(case: Case, admission: Any) -> None:
    """These need the CEL rule: without it the API server would accept them."""
    document = _build(case)
    without_cel = type(admission)(schemas=admission.schemas, cel=None)
    assert without_cel.errors(document) == []
