"""Thin kopf handlers, registered on a registry of their own (no import-time global
registration): :func:`create_registry` is what ``agentfleet-operator`` and the tests run."""

from __future__ import annotations

import kopf

from agentfleet_operator.handlers import agents, deployments, lifecycle


def create_registry() -> kopf.OperatorRegistry:
    """A fresh :class:`kopf.OperatorRegistry` with every agentfleet handler."""
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry)
    agents.register(registry)
    deployments.register(registry)
    return registry


__all__ = ["create_registry"]
