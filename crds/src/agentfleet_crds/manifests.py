"""Load agentfleet manifests (the YAML ``kubectl apply`` takes) into typed resources, with
errors that name the file, the document and the field."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentfleet_crds.v1alpha1 import API_VERSION, RESOURCES, Resource

_BY_KIND: dict[str, type[Resource]] = {r.KIND: r for r in RESOURCES}


class ManifestError(ValueError):
    """A manifest that is not a valid agentfleet resource. ``str()`` names where and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _location(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"function-after", "function-before"} or "[" in str(part):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def describe_validation_error(error: ValidationError) -> list[str]:
    """One ``field.path: message`` line per problem, in manifest (camelCase) terms."""
    return [f"{_location(e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()]


def parse_resource(document: dict[str, Any], source: str = "<manifest>") -> Resource:
    """Validate one decoded manifest document."""
    if not isinstance(document, dict):
        raise ManifestError(source, ["a manifest must be a mapping"])
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version != API_VERSION:
        raise ManifestError(source, [f"apiVersion: expected {API_VERSION!r}, got {api_version!r}"])
    model = _BY_KIND.get(str(kind))
    if model is None:
        raise ManifestError(source, [f"kind: expected one of {sorted(_BY_KIND)}, got {kind!r}"])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        name = (document.get("metadata") or {}).get("name", "?")
        raise ManifestError(f"{source} ({kind}/{name})", describe_validation_error(exc)) from exc


def load_manifests(text: str, source: str = "<manifest>") -> list[Resource]:
    """Every agentfleet resource in a (multi-document) YAML text. Documents of other API
    groups (a Secret next to an Agent, say) are skipped."""
    resources: list[Resource] = []
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(source, [f"invalid YAML: {exc}"]) from exc
    for index, document in enumerate(documents):
        where = f"{source}#{index}" if len(documents) > 1 else source
        if isinstance(document, dict) and not str(document.get("apiVersion", "")).startswith(
            API_VERSION.split("/")[0]
        ):
            continue
        resources.append(parse_resource(document, where))
    return resources


def load_manifest_files(paths: Iterable[Path]) -> list[Resource]:
    """Every agentfleet resource in these files (directories: their ``*.yaml``/``*.yml``)."""
    resources: list[Resource] = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        for file in files:
            resources.extend(load_manifests(file.read_text(encoding="utf-8"), str(file)))
    return resources
