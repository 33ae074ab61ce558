"""A property-based fuzz run of the whole API from its OpenAPI document (schemathesis):
every operation, with data generated from its schema (examples, then fuzzed and boundary
values, valid and invalid), against the real app over real HTTP, authenticated as an admin.
No 5xx; every response is documented (status code, content type, body schema, headers);
errors are ``application/problem+json`` problem details.

Every other case that names a session or an agent gets a real one (a fresh session of the
config agent ``demo``; ``demo`` itself), so that turns run and the success bodies are
checked too, not only the 404s of random ids.

Bounded for CI: 12 examples per operation in the fuzzing phase (more locally with
``AGENTFLEET_FUZZ_EXAMPLES=200``), derandomized (the same cases every run), about 40 s.

Excluded: WebSocket routes (not in the OpenAPI document; tests/runtime/realtime covers
them), and real sessions for ``GET …/events/stream`` (it follows a session forever, by
design: random ids still get their 404). ``POST …/messages/stream`` runs with real
sessions: its stream ends with the turn."""

from __future__ import annotations

import itertools
import os

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import AUTH, ServedRuntime, fuzz_app

schema = schemathesis.openapi.from_dict(fuzz_app()[0].openapi())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

_turns = itertools.count()


def _use_real_ids(case: schemathesis.Case, runtime: ServedRuntime) -> None:
    params = case.path_parameters
    if not params or next(_turns) % 2:
        return
    if "session_id" in params and not case.path.endswith("/events/stream"):  # endless
        session = runtime.new_session()
        if session is not None:
            params["session_id"] = session
    if "name" in params and case.path.startswith(("/api/v1/agents", "/api/v1/mcp-servers")):
        params["name"] = "demo"


@schema.parametrize()
@hypothesis.settings(
    max_examples=int(os.environ.get("AGENTFLEET_FUZZ_EXAMPLES", "12")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api(case: schemathesis.Case, served_runtime: ServedRuntime) -> None:
    _use_real_ids(case, served_runtime)
    case.call_and_validate(base_url=served_runtime.url, headers=AUTH, checks=CHECKS, timeout=30)
