"""The OpenAPI document as served: every operation is described, every request body has
an example, every error is documented as an RFC 9457 problem (``application/problem+json``),
and the interactive docs are served. Walks whatever operations exist, so a new route that
forgets these fails here."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from .conftest import ServedRuntime

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document(served_runtime: ServedRuntime) -> dict[str, Any]:
    response = httpx2.get(f"{served_runtime.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) > 20
    missing = [
        label
        for label, op in operations
        if not op.get("summary", "").strip() or not op.get("description", "").strip()
    ]
    assert missing == [], f"operations without summary/description: {missing}"


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    missing = []
    for label, op in _operations(document):
        for media_type, content in op.get("requestBody", {}).get("content", {}).items():
            schema = _resolve(document, content.get("schema", {}))
            if not any(k in content for k in ("example", "examples")) and not any(
                k in schema for k in ("example", "examples")
            ):
                missing.append(f"{label} ({media_type})")
    assert missing == [], f"request bodies without an example: {missing}"


def test_errors_are_documented_as_problem_details(document: dict[str, Any]) -> None:
    wrong = []
    for label, op in _operations(document):
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            content = response.get("content", {})
            schema = content.get("application/problem+json", {}).get("schema", {})
            if set(content) != {"application/problem+json"} or not schema.get("$ref", "").endswith(
                "/Problem"
            ):
                wrong.append(f"{label} {status}: {sorted(content)}")
    assert wrong == [], wrong
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 body is never sent
    assert {"type", "title", "status"} <= set(schemas["Problem"]["required"])


def test_authenticated_operations_document_401_403_429(document: dict[str, Any]) -> None:
    for label, op in _operations(document):
        if label.split(" ", 1)[1].startswith("/api/v1/"):
            assert {"401", "403"} <= set(op["responses"]), label


def test_interactive_docs_are_served(served_runtime: ServedRuntime) -> None:
    for path in ("/docs", "/redoc"):
        response = httpx2.get(f"{served_runtime.url}{path}", timeout=30)
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
