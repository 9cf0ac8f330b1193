"""The trigger indicators: pure, so checked in microseconds."""

from __future__ import annotations

from dashboard.indicators import indicators
from voxflow.scaling import Bounds, Signals, Thresholds

GUIDE = Thresholds(cpu_pct=70, p95_latency_s=2.0, error_rate=0.01, backlog=100, memory_pct=85)


def _by_name(out):
    return {row.name: row for row in out.rows}


def test_each_trigger_fires_only_above_its_threshold() -> None:
    at_limit = indicators(Signals(cpu_pct=70, p95_latency_s=2.0, error_rate=0.01, backlog=100, memory_pct=85), GUIDE, workers=2, bounds=Bounds(1, 4))
    assert {row.state for row in at_limit.rows} == {"ok"} and at_limit.action == "hold"
    above = indicators(Signals(cpu_pct=70.5, p95_latency_s=2.01, error_rate=0.011, backlog=101, memory_pct=85.5), GUIDE, workers=2, bounds=Bounds(1, 4))
    assert {row.state for row in above.rows} == {"firing"}


def test_values_thresholds_and_units_are_worded() -> None:
    out = indicators(Signals(cpu_pct=91.2, p95_latency_s=0.4321, error_rate=0.0234, backlog=1500, memory_pct=None), GUIDE, workers=2, bounds=Bounds(1, 4))
    rows = _by_name(out)
    assert (rows["cpu_pct"].label, rows["cpu_pct"].value, rows["cpu_pct"].threshold) == ("CPU", "91%", "> 70%")
    assert (rows["p95_latency_s"].value, rows["p95_latency_s"].threshold, rows["p95_latency_s"].state) == ("0.43 s", "> 2.00 s", "ok")
    assert (rows["error_rate"].value, rows["error_rate"].threshold) == ("2.34%", "> 1.00%")
    assert (rows["backlog"].value, rows["backlog"].threshold) == ("1,500 files", "> 100 files")
    assert (rows["memory_pct"].value, rows["memory_pct"].state) == ("—", "not measured")
    assert out.action == "scale_out" and out.advice.startswith("Scale out")
    assert "backlog" in out.reason and "cpu_pct" in out.reason and "error_rate" in out.reason


def test_memory_pressure_asks_for_bigger_workers_and_unmeasured_never_fires() -> None:
    assert indicators(Signals(memory_pct=90, backlog=500), GUIDE, workers=2, bounds=Bounds(1, 4)).action == "scale_up_memory"
    nothing = indicators(Signals(), GUIDE, workers=1, bounds=Bounds(1, 4))
    assert nothing.action == "hold" and {row.state for row in nothing.rows} == {"not measured"}
    at_max = indicators(Signals(backlog=500), GUIDE, workers=4, bounds=Bounds(1, 4))
    assert at_max.action == "hold" and "maximum" in at_max.reason
