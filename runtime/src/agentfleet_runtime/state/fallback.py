"""The Redis state backend's degraded mode, under its former name: it lives in
:mod:`agentfleet_runtime.state.degraded` (one module per concept); this module re-exports
it for the code that imports it from here."""

from agentfleet_runtime.state.degraded import *  # noqa: F403
from agentfleet_runtime.state.degraded import __all__ as __all__
