"""Thin kopf handlers, registered on a registry of their own (no import-time global
registration): :func:`create_registry` is what ``agentfleet-operator`` and the tests run."""

from __future__ import annotations

import kopf

from agentfleet_operator.handlers import lifecycle, triggers


def create_registry() -> kopf.OperatorRegistry:
    """A fresh :class:`kopf.OperatorRegistry` with every agentfleet handler. There is no
    per-object timer or deletion handler on purpose: kopf would put a finalizer on every
    custom resource for them, and deleting one would then hang while the operator is down."""
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry)
    triggers.register(registry)
    return registry


__all__ = ["create_registry"]
