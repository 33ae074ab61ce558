"""Garbage-collector tuning of a serving process (``agentfleet serve`` and ``dev``).

A turn allocates many short-lived containers (SDK models, LangGraph tasks, messages), so
CPython's default collector (a young-generation pass every 700 allocations) runs often, and
its full passes walk every object the process ever made, the ~400,000 of its imported
modules included. Measured in the turn benchmark: 13 % of the runtime's CPU in the collector,
a full pass costing ~175 ms. Two standard server settings take most of it back:

* ``gc.freeze()`` once the server has started: everything that exists then (modules,
  the app, agents) moves to a permanent generation that no pass walks again;
* a larger young-generation threshold: fewer, slightly larger young passes.

Cycles are still collected; garbage in a cycle lives a little longer. Python's defaults come
back with ``AGENTFLEET_GC__FREEZE_AFTER_STARTUP=false`` and ``AGENTFLEET_GC__GEN0_THRESHOLD=0``.
"""

from __future__ import annotations

import gc
import logging

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


class GcSettings(BaseModel):
    """``AGENTFLEET_GC__*``: the collector of a serving process (docs/performance.md)."""

    #: Move every object alive at start-up out of the collector's reach.
    freeze_after_startup: bool = True
    #: Allocations between young-generation passes (0: Python's default, 700).
    gen0_threshold: int = Field(default=10_000, ge=0, le=1_000_000)


def tune_for_serving(settings: GcSettings) -> None:
    """Apply ``settings``; call once, when the server has started."""
    if settings.gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gen0_threshold, gen1, gen2)
    if settings.freeze_after_startup:
        gc.collect()  # what start-up left as garbage is freed, not frozen
        gc.freeze()
    log.debug("gc: thresholds %s, %d objects frozen", gc.get_threshold(), gc.get_freeze_count())
