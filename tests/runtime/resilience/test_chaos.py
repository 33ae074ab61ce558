"""A short chaos run (bench/chaos.py): steady load, 20% of model calls failing in mixed
ways (401s included, at a higher rate so that dead letters happen), redis-server killed
and restarted mid-run; every accepted turn is answered, degraded or dead-lettered."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[3] / "bench" / "chaos.py"


@pytest.mark.timeout(240)
async def test_chaos_loses_nothing(redis_server: object) -> None:  # redis_server: installed
    spec = importlib.util.spec_from_file_location("agentfleet_bench_chaos", BENCH)
    assert spec is not None
    assert spec.loader is not None
    chaos = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = chaos
    spec.loader.exec_module(chaos)
    chaos.FAULTS["401"] = (chaos.FAULTS["401"][0], 4)  # make dead letters likely
    report = await chaos.run_chaos(turns=96, sessions=8, fault_rate=0.2, seed=3)
    print("\n".join(report.lines()))
    assert report.lost == 0, report.lost_turns
    assert report.accepted + report.refused == report.sent
    assert report.redis_restarts == 1
    assert sum(report.faults.values()) >= 10
    assert report.dead_lettered >= 1
    assert report.answered >= 60
