"""Audit events of the secrets package: the runtime's one audit facility lives in
:mod:`agentfleet_runtime.audit` (this module re-exports it for existing imports)."""

from __future__ import annotations

from agentfleet_runtime.audit import AUDIT_LOGGER, AuditEvent, AuditLog, AuditSink

__all__ = ["AUDIT_LOGGER", "AuditEvent", "AuditLog", "AuditSink"]
