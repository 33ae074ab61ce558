"""agentfleet custom resource models (group ``agentfleet.dev``, version ``v1alpha1``).

These Pydantic models are the one source of truth: the CRD YAML in ``crds/`` is generated
from them (``agentfleet crds generate``), the operator renders them, and the runtime reads
the config the operator renders from them (:mod:`agentfleet_crds.contract`).

This package depends on nothing else in the project.
"""

from agentfleet_crds.v1alpha1 import (
    GROUP,
    VERSION,
    Agent,
    MCPServer,
    ResiliencePolicy,
    SecretBinding,
)

__all__ = ["GROUP", "VERSION", "Agent", "MCPServer", "ResiliencePolicy", "SecretBinding"]
