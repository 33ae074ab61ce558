"""The audit log: security-relevant actions as structured ``agentfleet.audit`` events
(actor, tenant, subject, request id, never a secret), refused credentials audited without
flooding, and ``GET /api/v1/audit`` scoped to the caller's tenant."""

from __future__ import annotations

import logging

import pytest

from agentfleet_runtime.audit import AuditLog, AuthFailureAuditor

from .conftest import ADMIN, OTHER, READER, Api


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agentfleet.audit"]


def field(record: logging.LogRecord, name: str) -> object:
    return record.__dict__.get(name)


async def test_admin_actions_are_audited(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agentfleet.audit")
    created = await api.client.post(
        "/api/v1/api-keys",
        json={"name": "ci", "scopes": ["read"]},
        headers={**api.as_(), "X-Request-ID": "req-create-key"},
    )
    key = created.json()
    for action in ("rotate", "revoke"):
        response = await api.client.post(
            f"/api/v1/api-keys/{key['id']}/{action}", headers=api.as_()
        )
        assert response.status_code == 200, response.text
    assert (
        await api.client.delete(f"/api/v1/api-keys/{key['id']}", headers=api.as_())
    ).status_code == 204
    tenant = await api.client.post("/api/v1/tenants", json={"id": "acme"}, headers=api.as_())
    assert tenant.status_code == 201
    await api.client.patch("/api/v1/tenants/acme", json={"display_name": "A"}, headers=api.as_())
    await api.client.delete("/api/v1/tenants/acme", headers=api.as_())
    assert (await api.create_agent()).status_code == 201
    await api.client.post(
        "/api/v1/admin/breakers/llm:fake/fake-model/force-open", headers=api.as_()
    )
    await api.client.post("/api/v1/admin/breakers/llm:fake/fake-model/reset", headers=api.as_())
    await api.client.patch(
        "/api/v1/admin/resilience/flags", json={"retry": False}, headers=api.as_()
    )
    await api.client.post("/api/v1/mcp-servers/demo/refresh", headers=api.as_())
    await api.client.delete("/api/v1/agents/calc", headers=api.as_())

    records = audit_records(caplog)
    assert [r.getMessage() for r in records] == [
        "api_key.created",
        "api_key.rotated",
        "api_key.revoked",
        "api_key.deleted",
        "tenant.created",
        "tenant.updated",
        "tenant.deleted",
        "agent.created",
        "breaker.forced_open",
        "breaker.reset",
        "resilience.flags_changed",
        "mcp_server.refreshed",
        "agent.deleted",
    ]
    first = records[0]
    assert field(first, "audit") is True
    assert field(first, "outcome") == "ok"
    assert (field(first, "actor"), field(first, "tenant")) == ("alice", "default")
    assert (field(first, "subject_type"), field(first, "subject")) == ("api_key", key["id"])
    assert field(first, "request_id") == "req-create-key"
    assert created.headers["x-request-id"] == "req-create-key"
    assert field(records[10], "changes") == {"retry": False}
    assert field(records[8], "subject") == "llm:fake/fake-model"
    # never a secret: not the key, not the bearer token
    logged = "\n".join(str(r.__dict__) for r in records)
    assert key["key"] not in logged
    assert ADMIN not in logged

    # GET /api/v1/audit: newest first, the caller's tenant only, admin scope
    trail = (await api.get("/api/v1/audit", limit=3)).json()
    assert [e["action"] for e in trail["items"]] == [
        "agent.deleted",
        "mcp_server.refreshed",
        "resilience.flags_changed",
    ]
    assert trail["next_cursor"]
    keys_only = (await api.get("/api/v1/audit", action="api_key.")).json()
    assert [e["action"] for e in keys_only["items"]][-1] == "api_key.created"
    assert keys_only["total"] == 4
    assert (await api.get("/api/v1/audit", token=OTHER)).json()["items"] == []
    assert (await api.get("/api/v1/audit", token=READER)).status_code == 403


async def test_refused_credentials_are_audited_without_flooding(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentfleet.audit")
    for _ in range(5):
        response = await api.get("/api/v1/sessions", token="not-a-valid-token")
        assert response.status_code == 401
    assert (await api.get("/api/v1/sessions", token=None)).status_code == 401
    failures = [r for r in audit_records(caplog) if r.getMessage() == "auth.failed"]
    assert len(failures) == 1  # one per source and reason per window
    assert field(failures[0], "outcome") == "denied"
    assert field(failures[0], "reason") == "unauthorized"
    assert field(failures[0], "path") == "/api/v1/sessions"
    assert "not-a-valid-token" not in str(failures[0].__dict__)
    metrics = (await api.client.get("/metrics")).text
    assert 'agentfleet_auth_failures_total{reason="unauthorized"}' in metrics
    # the operator tenant's admins see untenanted events too
    seen = (await api.get("/api/v1/audit", action="auth.failed")).json()["items"]
    assert seen[0]["source"] == "127.0.0.1"
    assert (await api.get("/api/v1/audit", token=OTHER, action="auth.failed")).json()["items"] == []


def test_auth_failure_auditor_windows_and_counts() -> None:
    now = [0.0]
    events: list[dict[str, object]] = []
    log = AuditLog()
    log.add_sink(lambda e: events.append(e.as_dict()))
    auditor = AuthFailureAuditor(log, window_seconds=60, max_sources=2, clock=lambda: now[0])
    assert auditor.failed(source="a", reason="unauthorized", detail="bad")
    assert not auditor.failed(source="a", reason="unauthorized", detail="bad")
    assert not auditor.failed(source="a", reason="unauthorized", detail="bad")
    assert auditor.failed(source="a", reason="token-expired", detail="old")
    now[0] = 61
    assert auditor.failed(source="a", reason="unauthorized", detail="bad")
    assert [e["suppressed"] for e in events] == [0, 0, 2]
    assert auditor.failed(source="b", reason="unauthorized", detail="bad")  # bounded memory
    assert auditor.failed(source="c", reason="unauthorized", detail="bad")
    assert len(auditor._seen) <= 2
