"""Pydantic JSON schema → Kubernetes *structural* OpenAPI v3 schema.

Kubernetes accepts a CustomResourceDefinition only if its ``openAPIV3Schema`` is structural
(every node has a ``type``, no ``$ref``, no ``additionalProperties`` next to
``properties``, OpenAPI v3.0 keywords only), and it applies the ``default`` values itself.
:func:`model_schema` turns a pydantic model's JSON schema into exactly that:

* ``$ref``/``$defs`` are inlined (a field's own description and default win over the
  referenced model's);
* ``anyOf [X, null]`` becomes ``X``: an optional field is simply not required
  (``nullable: true`` only where ``null`` differs from the default);
* ``title`` is dropped, ``const`` becomes a one-value ``enum``, ``exclusiveMinimum: n``
  becomes ``minimum: n`` + ``exclusiveMinimum: true`` (the OpenAPI v3.0 form);
* ``additionalProperties: false`` (``extra="forbid"``) is dropped: the API server prunes or,
  with strict field validation (``kubectl``'s default), rejects unknown fields;
* ``default_factory`` defaults are included (pydantic leaves them out), reduced to what the
  API server cannot fill in from the nested defaults (``deployment: {}``);
* ``x-kubernetes-*`` keys a model sets with ``json_schema_extra`` are kept as they are.

Anything without a Kubernetes equivalent (a union of two types, a recursive model, an
unknown keyword) raises :class:`SchemaError` naming the field, rather than producing a
CRD the API server would reject. :func:`structural_problems` checks the result again, and
:func:`apply_defaults` does what the API server's defaulting does, for offline checks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

JsonSchema = dict[str, Any]

#: Keywords copied as they are (after their values are checked to be plain JSON).
_VALUE_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
    }
)
#: Every key Kubernetes' ``JSONSchemaProps`` has that a structural schema may use here.
_STRUCTURAL_KEYWORDS = _VALUE_KEYWORDS | {
    "description",
    "default",
    "nullable",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "example",
    "externalDocs",
}
_CEL_RULE_KEYS = frozenset(
    {"rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf"}
)
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


class SchemaError(ValueError):
    """A model that cannot be expressed as a structural schema. ``str()`` names the field."""


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also reports the defaults of ``default_factory`` fields, so that the CRD shows them
    and the API server fills them in like pydantic does."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data", False):
            return cast(Callable[[], Any], factory)()
        return super().get_default_value(schema)


def model_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural OpenAPI v3 schema of a model, by alias (camelCase)."""
    return to_structural(
        model.model_json_schema(
            by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults
        )
    )


def to_structural(json_schema: Mapping[str, Any]) -> JsonSchema:
    """Convert a pydantic JSON schema (with ``$defs``) to a structural schema."""
    definitions: Mapping[str, Any] = json_schema.get("$defs", {})
    root = {k: v for k, v in json_schema.items() if k != "$defs"}
    converted = _convert(root, definitions, path="", seen=frozenset())
    _minimize_defaults(converted)
    return converted


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _flatten(
    node: Mapping[str, Any], definitions: Mapping[str, Any], path: str, seen: frozenset[str]
) -> tuple[dict[str, Any], bool, frozenset[str]]:
    """Resolve ``$ref``, one-element ``allOf`` and ``anyOf [X, null]`` into one node.
    Returns the node, whether ``null`` was allowed, and the models on the way here."""
    result = dict(node)
    nullable = False
    if "$ref" in result:
        ref = str(result.pop("$ref"))
        name = ref.removeprefix("#/$defs/")
        if name not in definitions:
            raise SchemaError(f"{path or '<root>'}: unresolvable $ref {ref!r}")
        if name in seen:
            raise SchemaError(
                f"{path or '<root>'}: model {name} contains itself; "
                "a structural schema cannot be recursive"
            )
        seen = seen | {name}
        target, target_nullable, seen = _flatten(definitions[name], definitions, path, seen)
        nullable = nullable or target_nullable
        result = {**target, **result}  # the field's description/default win
    all_of = result.pop("allOf", None)
    if all_of is not None:
        if len(all_of) != 1:
            raise SchemaError(f"{path or '<root>'}: allOf with {len(all_of)} schemas")
        inner, inner_nullable, seen = _flatten(all_of[0], definitions, path, seen)
        nullable = nullable or inner_nullable
        result = {**inner, **result}
    any_of = result.pop("anyOf", None)
    if any_of is not None:
        options = [option for option in any_of if option != {"type": "null"}]
        nullable = nullable or len(options) < len(any_of)
        if len(options) != 1:
            raise SchemaError(
                f"{path or '<root>'}: a union of {len(options)} types is not structural; "
                "use one type (or a discriminated object with optional fields)"
            )
        inner, inner_nullable, seen = _flatten(options[0], definitions, path, seen)
        nullable = nullable or inner_nullable
        result = {**inner, **result}
    return result, nullable, seen


def _convert(
    node: Mapping[str, Any], definitions: Mapping[str, Any], path: str, seen: frozenset[str]
) -> JsonSchema:
    flat, nullable, seen = _flatten(node, definitions, path, seen)
    where = path or "<root>"
    out: JsonSchema = {}
    for key, value in flat.items():
        if key == "title":
            continue
        if key == "description":
            out[key] = normalize_description(str(value))
        elif key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is not None:
                out[key] = _drop_none(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if isinstance(value, bool):
                out[key] = value
            else:
                if bound in flat:
                    raise SchemaError(f"{where}: both {bound} and {key} are set")
                out[bound] = value
                out[key] = True
        elif key == "properties":
            out[key] = {
                name: _convert(child, definitions, _child(path, name), seen)
                for name, child in value.items()
            }
        elif key == "required":
            out[key] = sorted(value)
        elif key == "items":
            out[key] = _convert(value, definitions, f"{path}[]", seen)
        elif key == "additionalProperties":
            if value is False:
                continue  # extra="forbid": pruning / strict field validation does this
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif "properties" in flat:
                raise SchemaError(f"{where}: additionalProperties next to properties")
            else:
                out[key] = _convert(value, definitions, f"{path}{{}}", seen)
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        elif key in _VALUE_KEYWORDS or key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(f"{where}: JSON schema keyword {key!r} has no structural equivalent")
    if "type" not in out and not (
        out.get("x-kubernetes-preserve-unknown-fields") or out.get("x-kubernetes-int-or-string")
    ):
        raise SchemaError(f"{where}: no type (structural schemas need one on every node)")
    if nullable and "default" in out:
        out["nullable"] = True  # null must stay expressible when the default is not null
    return out


def _drop_none(value: Any) -> Any:
    """A default as a manifest shows it: unset (``None``) fields left out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def normalize_description(text: str) -> str:
    """Docstring prose for ``kubectl explain``: hard-wrapped lines joined into paragraphs,
    reST ````literals```` as `literals`."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p).replace("``", "`")


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, the way the API server
    defaults a custom resource (a defaulted object gets its own nested defaults too)."""
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        result = {k: copy.deepcopy(v) for k, v in value.items()}
        for name, child in properties.items():
            if name not in result and "default" in child:
                result[name] = copy.deepcopy(child["default"])
        extra = schema.get("additionalProperties")
        for name in result:
            if name in properties:
                result[name] = apply_defaults(result[name], properties[name])
            elif isinstance(extra, Mapping):
                result[name] = apply_defaults(result[name], extra)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def _minimize(value: Any, schema: Mapping[str, Any]) -> Any:
    """Leave out of a default what the nested defaults would fill in anyway."""
    if isinstance(value, dict) and "properties" in schema:
        properties: Mapping[str, Any] = schema["properties"]
        result: dict[str, Any] = {}
        for name, item in value.items():
            child = properties.get(name)
            if child is None:
                result[name] = item  # not in the schema: structural_problems reports it
            elif "default" in child and apply_defaults(item, child) == apply_defaults(
                child["default"], child
            ):
                continue
            else:
                result[name] = _minimize(item, child)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_minimize(item, schema["items"]) for item in value]
    return value


def _minimize_defaults(schema: JsonSchema) -> None:
    for child in _children(schema):
        _minimize_defaults(child)
    if "default" in schema:
        schema["default"] = _minimize(schema["default"], schema)


def _children(schema: Mapping[str, Any]) -> Iterator[JsonSchema]:
    yield from schema.get("properties", {}).values()
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield schema[key]


def walk(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every node of a schema with its path (``spec.tools[].mcpServerRef``)."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, _child(path, name))
    if isinstance(schema.get("items"), Mapping):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def structural_problems(schema: Mapping[str, Any]) -> list[str]:
    """What the API server would refuse in this CRD schema, one ``path: problem`` per line
    (empty when the schema is structural). Covers the rules this generator can break;
    default values are checked against their schema by the tests (with ``jsonschema``)."""
    problems: list[str] = []
    for path, node in walk(schema):
        where = path or "<root>"

        def problem(text: str, where: str = where) -> None:
            problems.append(f"{where}: {text}")

        for key in node:
            if key not in _STRUCTURAL_KEYWORDS and not key.startswith("x-kubernetes-"):
                problem(f"keyword {key!r} is not allowed in a structural schema")
        node_type = node.get("type")
        if node_type is None:
            if not (
                node.get("x-kubernetes-preserve-unknown-fields")
                or node.get("x-kubernetes-int-or-string")
            ):
                problem("no type")
        elif node_type not in _TYPES:
            problem(f"unknown type {node_type!r}")
        if "properties" in node and "additionalProperties" in node:
            problem("additionalProperties together with properties")
        if node.get("additionalProperties") is False:
            problem("additionalProperties: false")
        if ("properties" in node or "additionalProperties" in node) and node_type != "object":
            problem("properties on a non-object")
        if node_type == "array" and not isinstance(node.get("items"), Mapping):
            problem("an array without items")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node and not isinstance(node[key], bool):
                problem(f"{key} must be a boolean (OpenAPI v3.0)")
        if node.get("exclusiveMinimum") and "minimum" not in node:
            problem("exclusiveMinimum without minimum")
        if node.get("exclusiveMaximum") and "maximum" not in node:
            problem("exclusiveMaximum without maximum")
        missing = set(node.get("required", ())) - set(node.get("properties", {}))
        if missing:
            problem(f"required names unknown properties {sorted(missing)}")
        if "enum" in node and "default" in node and node["default"] not in node["enum"]:
            problem(f"default {node['default']!r} is not in the enum")
        if "description" in node and not isinstance(node["description"], str):
            problem("description is not a string")
        problems.extend(f"{where}: {text}" for text in _cel_problems(node))
        problems.extend(f"{where}: {text}" for text in _list_type_problems(node))
    metadata = schema.get("properties", {}).get("metadata")
    if metadata is not None and set(metadata) - {"type", "properties"}:
        problems.append("metadata: only type and name/generateName restrictions are allowed")
    return problems


def _cel_problems(node: Mapping[str, Any]) -> Iterator[str]:
    rules = node.get("x-kubernetes-validations")
    if rules is None:
        return
    if not isinstance(rules, list):
        yield "x-kubernetes-validations must be a list"
        return
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("rule"), str):
            yield f"x-kubernetes-validations[{index}] has no rule"
            continue
        unknown = set(rule) - _CEL_RULE_KEYS
        if unknown:
            yield f"x-kubernetes-validations[{index}] has unknown keys {sorted(unknown)}"
        if not rule["rule"].strip():
            yield f"x-kubernetes-validations[{index}] has an empty rule"


def _list_type_problems(node: Mapping[str, Any]) -> Iterator[str]:
    list_type = node.get("x-kubernetes-list-type")
    if list_type is None:
        return
    if node.get("type") != "array":
        yield "x-kubernetes-list-type on a non-array"
    if list_type not in ("atomic", "set", "map"):
        yield f"x-kubernetes-list-type {list_type!r}"
    items = node.get("items", {})
    if list_type == "set" and items.get("type") in ("object", "array"):
        yield "x-kubernetes-list-type set needs scalar items"
    if list_type == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        required = set(items.get("required", ()))
        defaulted = {k for k, v in items.get("properties", {}).items() if "default" in v}
        if not keys:
            yield "x-kubernetes-list-type map without x-kubernetes-list-map-keys"
        for key in keys:
            if key not in required | defaulted:
                yield f"list map key {key!r} must be required or defaulted"
