"""The CEL rules (``x-kubernetes-validations``) of the CRDs: each mirrors a pydantic
validator, names only fields that exist (reading optional ones only under ``has()``), and —
when cel-python is installed — accepts the valid and refuses the invalid values."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from agentfleet_crds.generate import NAME_RULE, name_rule
from agentfleet_crds.schema import apply_defaults, walk
from agentfleet_crds.v1alpha1 import RESOURCES, MCPServer, SecretBinding
from agentfleet_crds.v1alpha1.agent import AgentToolRef, AutoscalingSpec
from agentfleet_crds.v1alpha1.mcpserver import EnvVar, MCPServerSpec
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_crds.v1alpha1.secretbinding import BoundSecret, SecretBindingSpec

MACROS_AND_FUNCTIONS = {
    "has",
    "size",
    "all",
    "exists",
    "exists_one",
    "filter",
    "map",
    "matches",
    "startsWith",
    "endsWith",
    "contains",
}

#: Every model with a cross-field ``model_validator`` → where its CEL twin lives
#: (kind, schema path). A new validator without an entry here fails the test below.
CEL_TWINS: dict[type[BaseModel], list[tuple[str, str]]] = {
    AutoscalingSpec: [("Agent", "spec.deployment.autoscaling")],
    AgentToolRef: [("Agent", "spec.tools[]")],
    EnvVar: [("MCPServer", "spec.hosted.env[]"), ("MCPServer", "spec.stdio.env[]")],
    MCPServerSpec: [("MCPServer", "spec")],
    BoundSecret: [("SecretBinding", "spec.secrets[]")],
    SecretBindingSpec: [("SecretBinding", "spec")],
    ResiliencePolicySpec: [
        ("ResiliencePolicy", f"spec.{category}.retry")
        for category in ("llm", "database", "http", "storage", "queue")
    ],
}

#: For every rule in the CRDs: values (already defaulted) it must accept, and refuse.
RULE_CASES: dict[str, tuple[list[Any], list[Any]]] = {
    NAME_RULE["rule"]: (
        [{"metadata": {"name": n}} for n in ("a", "support", "agent-2", "x" * 63)],
        [
            {"metadata": {"name": n}}
            for n in ("Agent", "a_b", "-a", "a-", "a.b", "x" * 64, "2agent", "0")
        ],
    ),
    name_rule(MCPServer.NAME_MAX_LENGTH)["rule"]: (
        [{"metadata": {"name": n}} for n in ("a", "search", "crm-2", "x" * 59)],
        [{"metadata": {"name": n}} for n in ("Search", "1search", "x" * 60)],
    ),
    "self.minReplicas <= self.maxReplicas": (
        [{"minReplicas": 1, "maxReplicas": 1}, {"minReplicas": 2, "maxReplicas": 10}],
        [{"minReplicas": 3, "maxReplicas": 2}],
    ),
    "has(self.value) != has(self.secretKeyRef)": (
        [{"name": "A", "value": ""}, {"name": "A", "secretKeyRef": {"name": "s", "key": "k"}}],
        [{"name": "A"}, {"name": "A", "value": "v", "secretKeyRef": {"name": "s", "key": "k"}}],
    ),
    MCPServer.SPEC_CEL_RULES[0]["rule"]: (
        [{"url": "https://x"}, {"hosted": {"image": "i"}}, {"stdio": {"command": "c"}}],
        [
            {},
            {"url": "https://x", "stdio": {"command": "c"}},
            {"url": "u", "hosted": {}, "stdio": {}},
        ],
    ),
    MCPServer.SPEC_CEL_RULES[1]["rule"]: (
        [{"url": "https://lb", "endpoints": ["https://a"]}, {"stdio": {}, "endpoints": []}],
        [{"hosted": {"image": "i"}, "endpoints": ["https://a"]}],
    ),
    "has(self.kubernetes) != has(self.remote)": (
        [{"name": "n", "kubernetes": {}}, {"name": "n", "remote": {"key": "k"}}],
        [{"name": "n"}, {"name": "n", "kubernetes": {}, "remote": {"key": "k"}}],
    ),
    SecretBinding.SPEC_CEL_RULES[0]["rule"]: (
        [
            {"provider": "kubernetes", "secrets": [{"kubernetes": {}}, {"kubernetes": {}}]},
            {"provider": "vault", "secrets": [{"remote": {}}]},
        ],
        [
            {"provider": "kubernetes", "secrets": [{"kubernetes": {}}, {"remote": {}}]},
            {"provider": "aws", "secrets": [{"kubernetes": {}}]},
        ],
    ),
    AgentToolRef.model_config["json_schema_extra"]["x-kubernetes-validations"][0]["rule"]: (  # type: ignore[index,call-overload]
        [
            {"mcpServerRef": {"name": "s"}},
            {"mcpServerRef": {"name": "s"}, "allowedTools": ["a"]},
            {"mcpServerRef": {"name": "s"}, "pinnedTools": [{"name": "a"}]},
            {
                "mcpServerRef": {"name": "s"},
                "allowedTools": ["a", "b"],
                "pinnedTools": [{"name": "b"}],
            },
        ],
        [{"mcpServerRef": {"name": "s"}, "allowedTools": ["a"], "pinnedTools": [{"name": "b"}]}],
    ),
    "self.baseDelaySeconds <= self.maxDelaySeconds": (
        [
            {"baseDelaySeconds": 1, "maxDelaySeconds": 1.0},
            {"baseDelaySeconds": 0, "maxDelaySeconds": 0},
        ],
        [{"baseDelaySeconds": 2.5, "maxDelaySeconds": 2}],
    ),
}


def _rules(
    schemas: Mapping[str, Mapping[str, Any]],
) -> Iterator[tuple[str, str, Mapping[str, Any], dict[str, str]]]:
    for kind, schema in schemas.items():
        for path, node in walk(schema):
            for rule in node.get("x-kubernetes-validations", []):
                yield kind, path, node, rule


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for info in model.model_fields.values():
        stack: list[Any] = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _models(annotation, seen)
            stack.extend(typing.get_args(annotation))


def test_every_cross_field_validator_has_a_cel_twin(crd_schemas: dict[str, Any]) -> None:
    reachable: set[type[BaseModel]] = set()
    for resource in RESOURCES:
        _models(resource, reachable)
    with_validators = {m for m in reachable if m.__pydantic_decorators__.model_validators}
    assert with_validators == set(CEL_TWINS), "add the CEL twin of each model_validator"
    nodes = {(kind, path): node for kind, s in crd_schemas.items() for path, node in walk(s)}
    for model, places in CEL_TWINS.items():
        for place in places:
            assert nodes[place].get("x-kubernetes-validations"), f"{model.__name__} at {place}"


def test_every_rule_has_accept_and_refuse_cases(crd_schemas: dict[str, Any]) -> None:
    rules = {rule["rule"] for _, _, _, rule in _rules(crd_schemas)}
    assert rules == set(RULE_CASES)
    for rule, (valid, invalid) in RULE_CASES.items():
        assert valid, rule
        assert invalid, rule


def _strip_strings(rule: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", rule)


def _resolve(
    node: Mapping[str, Any], parts: list[str], where: str
) -> tuple[Mapping[str, Any], list[bool]]:
    """The schema node a field path leads to, and per step whether it is always present."""
    present: list[bool] = []
    for part in parts:
        properties = node.get("properties", {})
        assert node.get("type") == "object", f"{where}: {part!r} of a non-object"
        assert part in properties, f"{where}: no field {part!r}"
        present.append(part in node.get("required", ()) or "default" in properties[part])
        node = properties[part]
    return node, present


def test_rules_are_plausible_cel_over_fields_that_exist(crd_schemas: dict[str, Any]) -> None:
    """Without a CEL evaluator: balanced syntax, known functions, every ``self.x.y`` and
    macro variable path names a field of the schema, and an optional field with no default
    is only read under ``has()`` (else the API server reports "no such key")."""
    checked = 0
    for kind, path, node, rule in _rules(crd_schemas):
        text = _strip_strings(rule["rule"])
        where = f"{kind} {path or '<root>'}: {rule['rule']}"
        assert text.count("(") == text.count(")"), where
        assert text.count("[") == text.count("]"), where
        assert rule["rule"].count("'") % 2 == 0, where
        assert rule.get("message"), where
        functions = set(re.findall(r"([A-Za-z_]\w*)\s*\(", text))
        assert functions <= MACROS_AND_FUNCTIONS, f"{where}: {functions - MACROS_AND_FUNCTIONS}"
        variables: dict[str, Mapping[str, Any]] = {"self": node}
        for match in re.finditer(
            r"\bself((?:\.\w+)*)\.(?:all|exists|exists_one|filter|map)\(\s*(\w+)\s*,", text
        ):
            target, _ = _resolve(node, match.group(1).split(".")[1:], where)
            assert target.get("type") == "array", f"{where}: macro over a non-list"
            variables[match.group(2)] = target["items"]
        for match in re.finditer(r"\b([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)(\s*\()?", text):
            head, parts = match.group(1), match.group(2).split(".")[1:]
            if match.group(3):
                parts = parts[:-1]  # the last one is a method: .matches(, .all(
            if head not in variables or not parts:
                continue
            if head == "self" and path == "" and parts[0] == "metadata":
                assert parts[1:] in (["name"], ["generateName"]), f"{where}: only name is readable"
                continue
            _, present = _resolve(variables[head], parts, where)
            before = text[: match.start()]
            # read under has(), or after a has() of the same field earlier in the rule
            guarded = before.rstrip().endswith("has(") or f"has({head}.{'.'.join(parts)})" in before
            if not guarded:
                assert all(present), f"{where}: {head}.{'.'.join(parts)} may be absent; use has()"
            checked += 1
        if "fieldPath" in rule:
            _resolve(node, rule["fieldPath"].lstrip(".").split("."), where)
    assert checked >= 10


def test_every_rule_compiles(cel: Any, crd_schemas: dict[str, Any]) -> None:
    for kind, path, _, rule in _rules(crd_schemas):
        try:
            cel.compile(rule["rule"])
        except Exception as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{kind} {path}: {rule['rule']}: {exc}")


@pytest.mark.parametrize("rule", list(RULE_CASES), ids=lambda r: r[:40])
def test_rule_accepts_valid_and_refuses_invalid_values(
    rule: str, cel: Any, crd_schemas: dict[str, Any]
) -> None:
    places = [
        (f"{kind} {path}", node) for kind, path, node, r in _rules(crd_schemas) if r["rule"] == rule
    ]
    assert places, f"{rule} is in no CRD"
    valid, invalid = RULE_CASES[rule]
    for where, node in places:
        for value in valid:
            assert bool(cel.evaluate(rule, value, node)) is True, (where, value)
        for value in invalid:
            assert bool(cel.evaluate(rule, value, node)) is False, (where, value)


def test_schema_defaults_validate_against_their_own_schema(
    admission: Any, crd_schemas: dict[str, Any]
) -> None:
    """The API server refuses a CRD whose defaults do not validate (CEL included)."""
    checked = 0
    for kind, schema in crd_schemas.items():
        for path, node in walk(schema):
            if "default" in node:
                value = apply_defaults(node["default"], node)
                assert admission.validate(value, node, path) == [], f"{kind} {path}"
                checked += 1
    assert checked > 50
