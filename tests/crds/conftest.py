"""Shared fixtures for the CRD tests: the committed CRDs, the example manifests, and an
offline stand-in for the API server's admission of a custom resource (defaulting, then the
openAPIV3Schema with strict field validation, then the CEL rules when cel-python is
installed)."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agentfleet_crds.schema import apply_defaults

REPO = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = REPO / "crds" / "manifests"
EXAMPLES_DIR = REPO / "examples"
HAVE_CEL = importlib.util.find_spec("celpy") is not None
NO_CEL = "cel-python (import celpy) is not installed: CEL rules not evaluated"


def format_path(parts: Iterable[str | int]) -> str:
    """``spec.tools[0].mcpServerRef.name``, the way the API server names fields."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def closed(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as strict field validation applies it: objects with ``properties`` refuse
    unknown fields (the API server prunes or, with ``kubectl``'s default strict field
    validation, rejects them)."""
    result = copy.deepcopy(dict(schema))

    def close(node: dict[str, Any]) -> None:
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for child in node.get("properties", {}).values():
            close(child)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                close(node[key])

    close(result)
    return result


def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """``path: message`` for every way ``instance`` breaks the (OpenAPI v3.0 / Draft 4)
    schema. Draft 4 is the JSON Schema draft whose ``exclusiveMinimum`` is the boolean
    form Kubernetes requires. Unknown and missing fields are reported at their own path."""
    validator = jsonschema.Draft4Validator(closed(schema))
    errors: list[str] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        path = format_path(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            errors.extend(
                f"{_join(path, name)}: unknown field"
                for name in error.instance
                if name not in known
            )
        elif error.validator == "required" and isinstance(error.instance, dict):
            errors.extend(
                f"{_join(path, name)}: Required value"
                for name in error.validator_value
                if name not in error.instance
            )
        else:
            errors.append(f"{path or '<root>'}: {error.message}")
    return errors


class CelRules:
    """Evaluates the ``x-kubernetes-validations`` of a schema over an object, as the API
    server does: each rule with ``self`` bound to the value at its node; ``number`` fields
    are doubles, ``integer`` fields ints."""

    def __init__(self) -> None:
        import celpy

        self._celpy: Any = celpy
        self._env = celpy.Environment()
        self._programs: dict[str, Any] = {}

    def compile(self, rule: str) -> Any:
        if rule not in self._programs:
            self._programs[rule] = self._env.program(self._env.compile(rule))
        return self._programs[rule]

    def evaluate(self, rule: str, value: Any, schema: Mapping[str, Any]) -> Any:
        program = self.compile(rule)
        return program.evaluate({"self": self._celpy.json_to_cel(_typed(value, schema))})

    def errors(self, value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
        found: list[str] = []
        for rule in schema.get("x-kubernetes-validations", []):
            result = self.evaluate(rule["rule"], value, schema)
            if not (isinstance(result, self._celpy.celtypes.BoolType) and bool(result)):
                where = path + rule.get("fieldPath", "") if path or "fieldPath" in rule else ""
                found.append(f"{where.lstrip('.') or '<root>'}: {rule['message']}")
        properties = schema.get("properties", {})
        if isinstance(value, dict):
            for name, item in value.items():
                if name in properties:
                    found.extend(self.errors(item, properties[name], _join(path, name)))
        if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                found.extend(self.errors(item, schema["items"], f"{path}[{index}]"))
        return found


def _typed(value: Any, schema: Mapping[str, Any]) -> Any:
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {k: _typed(v, properties.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, schema.get("items", {})) for v in value]
    return value


@dataclass
class Admission:
    """What ``kubectl apply`` of a custom resource would get back from the API server."""

    schemas: dict[str, dict[str, Any]]
    cel: CelRules | None = field(default=None)

    def defaulted(self, document: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = apply_defaults(dict(document), self.schemas[document["kind"]])
        return result

    def errors(self, document: Mapping[str, Any]) -> list[str]:
        """Empty if the object would be admitted, else ``path: message`` lines."""
        return self.validate(self.defaulted(document), self.schemas[document["kind"]])

    def validate(self, instance: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
        """Schema errors of an (already defaulted) value, then CEL errors if there are none."""
        errors = schema_errors(instance, schema)
        if not errors and self.cel is not None:
            errors = self.cel.errors(instance, schema, path)
        return errors


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def example_documents() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Every document of every example file: (file name, index, document)."""
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for index, document in enumerate(load_yaml_documents(path)):
            yield path.name, index, document


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``example``: one test per agentfleet document of ``examples/``."""
    if "example" in metafunc.fixturenames:
        cases = [
            pytest.param(doc, id=f"{name}#{index}-{doc['kind']}/{doc['metadata']['name']}")
            for name, index, doc in example_documents()
            if str(doc.get("apiVersion", "")).startswith("agentfleet.dev/")
        ]
        metafunc.parametrize("example", cases)


@pytest.fixture(scope="session")
def examples() -> list[tuple[str, int, dict[str, Any]]]:
    """Every document of ``examples/`` (Secrets too): (file name, index, document)."""
    return list(example_documents())


@pytest.fixture(scope="session")
def committed_crds() -> dict[str, dict[str, Any]]:
    """The committed CRD documents by kind."""
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS_DIR.glob("*.agentfleet.dev.yaml")):
        (document,) = load_yaml_documents(path)
        crds[document["spec"]["names"]["kind"]] = document
    return crds


@pytest.fixture(scope="session")
def crd_schemas(committed_crds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The committed ``openAPIV3Schema`` by kind."""
    return {
        kind: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for kind, crd in committed_crds.items()
    }


@pytest.fixture(scope="session")
def cel() -> CelRules:
    if not HAVE_CEL:
        pytest.skip(NO_CEL)
    return CelRules()


@pytest.fixture(scope="session")
def admission(crd_schemas: dict[str, dict[str, Any]]) -> Admission:
    """Schema admission, with CEL rules when cel-python is installed."""
    return Admission(schemas=crd_schemas, cel=CelRules() if HAVE_CEL else None)
