import pytest

from voxflow.scaling import Signals, Thresholds, evaluate, percentile, recommend

LIMITS = Thresholds(cpu_pct=70, p95_latency_s=2.0, error_rate=0.01, backlog=100, memory_pct=85)


def test_backlog_alone_asks_for_more_workers() -> None:
    advice = recommend(Signals(cpu_pct=20, backlog=500), LIMITS, workers=2, min_workers=1, max_workers=8)
    assert advice.action == "scale_out" and advice.reason == "firing: backlog"


def test_memory_pressure_asks_for_bigger_workers_not_more() -> None:
    advice = recommend(Signals(cpu_pct=95, memory_pct=90, backlog=500), LIMITS, workers=2, min_workers=1, max_workers=8)
    assert advice.action == "scale_up_memory"


def test_at_maximum_it_holds_and_says_why() -> None:
    advice = recommend(Signals(cpu_pct=95, p95_latency_s=3.0), LIMITS, workers=8, min_workers=1, max_workers=8)
    assert advice.action == "hold" and "cpu_pct" in advice.reason and "p95_latency_s" in advice.reason


def test_idle_cluster_may_scale_in_but_not_below_minimum() -> None:
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=4, min_workers=1, max_workers=8).action == "scale_in"
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=1, min_workers=1, max_workers=8).action == "hold"


def test_thresholds_are_strict_and_unmeasured_never_fires() -> None:
    triggers = {t.name: t for t in evaluate(Signals(cpu_pct=70.0, error_rate=0.02), LIMITS)}
    assert not triggers["cpu_pct"].firing and triggers["error_rate"].firing
    assert not triggers["memory_pct"].firing and triggers["memory_pct"].value is None


@pytest.mark.parametrize(("values", "q", "expected"), [([1, 2, 3, 4], 50, 2.5), ([5], 95, 5), ([1, 2, 3, 4, 5], 100, 5), ([], 95, None)])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected
