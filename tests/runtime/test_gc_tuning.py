"""The serving process's collector settings (agentfleet_runtime.gc_tuning)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.gc_tuning import GcSettings, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_serving_freezes_what_start_up_made_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(1000)]  # alive at "start-up"
    tune_for_serving(GcSettings())
    assert gc.get_threshold()[0] == 10_000
    assert gc.get_freeze_count() >= len(survivor)
    # A cycle made after start-up is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.mark.usefixtures("restored_gc")
def test_python_defaults_come_back_when_switched_off() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_for_serving(GcSettings(freeze_after_startup=False, gen0_threshold=0))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_GC__GEN0_THRESHOLD", "2000")
    monkeypatch.setenv("AGENTFLEET_GC__FREEZE_AFTER_STARTUP", "false")
    settings = RuntimeSettings().gc
    assert settings == GcSettings(freeze_after_startup=False, gen0_threshold=2000)
