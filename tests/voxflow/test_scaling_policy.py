import pytest

from voxflow.scaling import Bounds, Signals, Thresholds, evaluate, percentile, recommend
from voxflow.settings import Settings

LIMITS = Thresholds(cpu_pct=70, p95_latency_s=2.0, error_rate=0.01, backlog=100, memory_pct=85)


def test_backlog_alone_asks_for_more_workers() -> None:
    advice = recommend(Signals(cpu_pct=20, backlog=500), LIMITS, workers=2, bounds=Bounds(1, 8))
    assert advice.action == "scale_out" and advice.reason == "firing: backlog"


def test_memory_pressure_asks_for_bigger_workers_not_more() -> None:
    advice = recommend(Signals(cpu_pct=95, memory_pct=90, backlog=500), LIMITS, workers=2, bounds=Bounds(1, 8))
    assert advice.action == "scale_up_memory"


def test_at_maximum_it_holds_and_says_why() -> None:
    advice = recommend(Signals(cpu_pct=95, p95_latency_s=3.0), LIMITS, workers=8, bounds=Bounds(1, 8))
    assert advice.action == "hold" and "cpu_pct" in advice.reason and "p95_latency_s" in advice.reason


def test_idle_cluster_may_scale_in_but_not_below_minimum() -> None:
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=4, bounds=Bounds(1, 8)).action == "scale_in"
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=1, bounds=Bounds(1, 8)).action == "hold"


def test_thresholds_are_strict_and_unmeasured_never_fires() -> None:
    triggers = {t.name: t for t in evaluate(Signals(cpu_pct=70.0, error_rate=0.02), LIMITS)}
    assert not triggers["cpu_pct"].firing and triggers["error_rate"].firing
    assert not triggers["memory_pct"].firing and triggers["memory_pct"].value is None


@pytest.mark.parametrize(("values", "q", "expected"), [([1, 2, 3, 4], 50, 2.5), ([5], 95, 5), ([1, 2, 3, 4, 5], 100, 5), ([], 95, None)])
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_an_existing_clusters_advice_has_no_local_maximum_and_is_for_its_operator() -> None:
    # A 2-core client (VOXFLOW_DASK_MAX_WORKERS defaults to its CPU count) told a 16-worker cluster to hold at its 2-worker maximum.
    bounds = Bounds.of(Settings(dask_max_workers=2, dask_address="tcp://dask:8786"))
    advice = recommend(Signals(cpu_pct=95, backlog=500), LIMITS, workers=16, bounds=bounds)
    assert advice.action == "scale_out"
    assert advice.reason == "firing: backlog, cpu_pct (advice for the operator of the Dask cluster at tcp://dask:8786: voxflow does not scale it)"
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=16, bounds=bounds).action == "scale_in"
    assert recommend(Signals(cpu_pct=5, backlog=0), LIMITS, workers=1, bounds=bounds).action == "hold"  # a run needs one


def test_a_cluster_voxflow_starts_keeps_its_settings_bounds() -> None:
    settings = Settings(dask_min_workers=2, dask_max_workers=4)
    assert Bounds.of(settings) == Bounds(2, 4)
    # The CLI hands the flow its own local cluster by address: still voxflow's to scale.
    assert Bounds.of(settings.model_copy(update={"dask_address": "tcp://127.0.0.1:40000"}), started_here=True) == Bounds(2, 4)
    assert "operator" not in recommend(Signals(backlog=500), LIMITS, workers=4, bounds=Bounds(2, 4)).reason
