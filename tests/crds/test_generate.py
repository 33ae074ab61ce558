"""The CRD generator: committed YAML is current, output is deterministic, the CLI works."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_crds.generate import (
    HEADER,
    KUSTOMIZATION,
    build_crd,
    crd_filename,
    generate_crds,
    main,
    render_all,
)
from agentfleet_crds.v1alpha1 import GROUP, RESOURCES, VERSION, Agent, MCPServer

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "crds" / "manifests"
EXPECTED_FILES = [
    "agents.agentfleet.dev.yaml",
    "mcpservers.agentfleet.dev.yaml",
    "resiliencepolicies.agentfleet.dev.yaml",
    "secretbindings.agentfleet.dev.yaml",
    "kustomization.yaml",
]


def test_committed_crds_match_the_models() -> None:
    stale = generate_crds(MANIFESTS, check=True)
    assert not stale, (
        "the CRD YAML in crds/manifests is out of date with the models: "
        f"{[str(p.relative_to(REPO)) for p in stale]}; "
        "run `uv run agentfleet-crds generate` and commit the result"
    )


def test_output_is_deterministic_and_marked_generated() -> None:
    first, second = render_all(), render_all()
    assert first == second
    assert list(first) == EXPECTED_FILES
    for name, text in first.items():
        assert text.startswith(HEADER), name
        assert "do not edit" in text.splitlines()[0]
        assert "&id" not in text, f"{name} uses YAML anchors"
        assert "*id" not in text, f"{name} uses YAML aliases"


def test_schema_keys_are_sorted_like_the_api_server_returns_them() -> None:
    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert list(node) == sorted(node), path
            for key, value in node.items():
                check(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                check(value, f"{path}[{index}]")

    for resource in RESOURCES:
        check(build_crd(resource)["spec"], resource.KIND)


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.KIND)
def test_crd_names_scope_version_and_subresources(resource: type[Agent]) -> None:
    crd = build_crd(resource)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{resource.PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == "agentfleet.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "categories": ["agentfleet"],
        "kind": resource.KIND,
        "listKind": f"{resource.KIND}List",
        "plural": resource.PLURAL,
        "shortNames": list(resource.SHORT_NAMES),
        "singular": resource.KIND.lower(),
    }
    (version,) = spec["versions"]
    assert version["name"] == VERSION == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert [(c["name"], c["type"], c["jsonPath"]) for c in columns] == [
        (c.name, c.type, c.json_path) for c in resource.PRINTER_COLUMNS
    ]
    assert [c.get("priority", 0) for c in columns] == [c.priority for c in resource.PRINTER_COLUMNS]


def test_agent_printer_columns_read_fields_that_exist() -> None:
    schema = build_crd(Agent)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for column in Agent.PRINTER_COLUMNS:
        path = column.json_path.split("[")[0].strip(".").split(".")
        if path[0] == "metadata":
            continue
        node = schema
        for part in path:
            assert part in node["properties"], f"{column.name}: {column.json_path}"
            node = node["properties"][part]
            if node.get("type") == "array":
                node = node["items"]


def test_spec_cel_rules_and_status_schema_are_in_place() -> None:
    schema = build_crd(MCPServer)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_rules = schema["properties"]["spec"]["x-kubernetes-validations"]
    assert [r for r in MCPServer.SPEC_CEL_RULES if r not in spec_rules] == []
    status = schema["properties"]["status"]
    assert set(status["properties"]) == {
        "conditions",
        "observedGeneration",
        "url",
        "tools",
        "toolSchemas",
        "replicas",
        "readyReplicas",
    }
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["properties"]["lastTransitionTime"] == {
        "description": "When the status last changed.",
        "format": "date-time",
        "type": "string",
    }
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load(render_all()[KUSTOMIZATION])
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == [crd_filename(r) for r in RESOURCES]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_the_committed_crds() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = sorted(d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout))
    assert names == sorted(f"{r.PLURAL}.{GROUP}" for r in RESOURCES)


def test_generate_writes_then_check_passes(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    assert generate_crds(out, check=True) == [out / name for name in EXPECTED_FILES]
    assert not out.exists(), "--check must not write"
    written = generate_crds(out, check=False)
    assert written == [out / name for name in EXPECTED_FILES]
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED_FILES)
    assert generate_crds(out, check=True) == []
    assert generate_crds(out, check=False) == []


def test_check_names_edited_and_obsolete_files_and_leaves_others_alone(tmp_path: Path) -> None:
    generate_crds(tmp_path, check=False)
    edited = tmp_path / "agents.agentfleet.dev.yaml"
    edited.write_text(edited.read_text().replace("maxItems: 32", "maxItems: 33"))
    obsolete = tmp_path / "widgets.agentfleet.dev.yaml"
    obsolete.write_text(HEADER + "kind: CustomResourceDefinition\n")
    handwritten = tmp_path / "extra.yaml"
    handwritten.write_text("kind: ConfigMap\n")

    assert generate_crds(tmp_path, check=True) == [edited, obsolete]
    assert obsolete.exists()
    assert generate_crds(tmp_path, check=False) == [edited, obsolete]
    assert not obsolete.exists()
    assert handwritten.read_text() == "kind: ConfigMap\n"
    assert generate_crds(tmp_path, check=True) == []


def test_cli_check_fails_naming_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--output-dir", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "agents.agentfleet.dev.yaml") in err
    assert "uv run agentfleet-crds generate" in err

    assert main(["generate", "--output-dir", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'kustomization.yaml'}" in capsys.readouterr().out
    assert main(["generate", "--output-dir", str(tmp_path), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_cli_requires_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    assert "generate" in capsys.readouterr().err
