"""Pure rendering: custom resources → the Kubernetes objects the operator owns.

Nothing here imports kopf or a Kubernetes client; every function is a plain function of
its arguments, tested with golden objects.
"""

from agentfleet_operator.render.agent import (
    ObjectRef,
    RenderedAgent,
    RenderResult,
    render_agent,
)
from agentfleet_operator.render.config import MissingReference

__all__ = [
    "MissingReference",
    "ObjectRef",
    "RenderResult",
    "RenderedAgent",
    "render_agent",
]
