"""The scaling monitor: cluster load and task counts (pure), and its samples from a real LocalCluster."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from distributed import Client, Event, LocalCluster
from pymongo.database import Database

from store.cache import LiveMetrics
from store.mongo import ResultStore
from tasks.scaling import ScalingMonitor, cluster_load, task_counts
from voxflow.scaling import Bounds, Thresholds

THRESHOLDS = Thresholds(cpu_pct=70, p95_latency_s=2, error_rate=0.01, backlog=100, memory_pct=85)
SLACK = timedelta(milliseconds=50)  # nx-27017 stores times to the millisecond


def _monitor(client: Client, mongo_db: Database, redis_client: redis.Redis, run_id: str, *, bounds: Bounds) -> ScalingMonitor:
    return ScalingMonitor(client, results=ResultStore(mongo_db), metrics=LiveMetrics(redis_client, maxlen=100), thresholds=THRESHOLDS,
                          run_id=run_id, bounds=bounds)


def _add_and_retire_a_worker(cluster: LocalCluster, client: Client) -> None:
    cluster.scale(2)
    client.wait_for_workers(2, timeout=30)
    cluster.scale(1)
    deadline = time.monotonic() + 30
    while len(client.scheduler_info()["workers"]) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_cluster_load_means_cpu_and_memory_share() -> None:
    workers = {
        "a": {"metrics": {"cpu": 150.0, "memory": 500}, "memory_limit": 1000},  # psutil can exceed 100 %: cap it
        "b": {"metrics": {"cpu": 50.0, "memory": 100}, "memory_limit": 1000},
    }
    cpu, memory = cluster_load(workers)
    assert cpu == 75.0 and memory == 30.0
    assert cluster_load({}) == (None, None)


def test_only_pipeline_failures_count_as_errors(mongo_db: Database, redis_client: redis.Redis) -> None:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        monitor = _monitor(client, mongo_db, redis_client, "run-errors", bounds=Bounds(1, 2))
        monitor.add_files([0.1] * 8, ["decode", "quality"])  # bad input: more workers cannot help
        quiet = monitor.observe(backlog=0)
        monitor.add_files([0.1] * 8, ["worker", "timeout"])
        failing = monitor.observe(backlog=0)
    assert {t.name: t.firing for t in quiet.triggers}["error_rate"] is False and quiet.action != "scale_out"
    assert failing.action == "scale_out" and "error_rate" in failing.reason
    assert {t.name: t.value for t in failing.triggers}["error_rate"] == 2 / 20


def _wait_for(event_name: str) -> str:
    Event(event_name).wait(timeout=30)
    return event_name


def test_samples_carry_the_runs_tasks_processing_and_queued(mongo_db: Database, redis_client: redis.Redis) -> None:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        monitor = _monitor(client, mongo_db, redis_client, "run-tasks", bounds=Bounds(1, 1))
        futures = [client.submit(_wait_for, "go-tasks", key=f"blocked-{i}") for i in range(5)]
        deadline = time.monotonic() + 10
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        monitor.observe(backlog=5)
        _, sample = redis_client.xrevrange("voxflow:metrics:workers", count=1)[0]
        assert sample["run_id"] == "run-tasks"
        running, queued = int(sample["processing"]), int(sample["queued"])
        assert running + queued == 5 and 1 <= running <= 2, sample  # one thread: the rest wait on the scheduler
        Event("go-tasks").set()
        client.gather(futures)
        monitor.observe(backlog=0)
        _, sample = redis_client.xrevrange("voxflow:metrics:workers", count=1)[0]
        assert (sample["processing"], sample["queued"]) == ("0", "0")


def test_task_counts_split_pending_keys_by_whether_a_worker_has_them() -> None:
    assert task_counts([], {}) == (0, 0)
    assert task_counts(["a", "b", "c"], {"w1": ["a"], "w2": ["x"]}) == (1, 2)
    assert task_counts(["a", "b"], {"w1": ["a", "b"]}) == (2, 0)


def test_every_change_in_the_worker_count_is_recorded_at_its_time(mongo_db: Database, redis_client: redis.Redis) -> None:
    # A worker added and retired between two samples: counting workers at each sample saw 1 and 1, and recorded nothing.
    results = ResultStore(mongo_db)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        monitor = _monitor(client, mongo_db, redis_client, "run-changes", bounds=Bounds(1, 2))
        monitor.observe(backlog=3)
        before_add = datetime.now(timezone.utc)
        _add_and_retire_a_worker(cluster, client)
        after_retire = datetime.now(timezone.utc)
        monitor.observe(backlog=0)
    events = sorted(results.find_scaling_events(run_id="run-changes"), key=lambda e: e["time"])
    assert [(e["workers_before"], e["workers_after"], e["reason"]) for e in events] == [
        (0, 1, "cluster start"), (1, 2, "worker added"), (2, 1, "worker removed")
    ], events
    times = [e["time"].replace(tzinfo=timezone.utc) for e in events[1:]]
    assert before_add - SLACK <= times[0] <= times[1] <= after_retire + SLACK
    assert monitor.max_workers_seen == 2


def test_changes_logged_before_a_run_are_not_its_own(mongo_db: Database, redis_client: redis.Redis) -> None:
    # A queue drain's runs share one scheduler: the changes an earlier run saw stay in the scheduler's log.
    results = ResultStore(mongo_db)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        _monitor(client, mongo_db, redis_client, "run-earlier", bounds=Bounds(1, 2)).observe(backlog=1)
        _add_and_retire_a_worker(cluster, client)
        monitor = _monitor(client, mongo_db, redis_client, "run-later", bounds=Bounds(1, 2))
        monitor.observe(backlog=1)
        monitor.observe(backlog=0)
    events = results.find_scaling_events(run_id="run-later")
    assert [(e["workers_before"], e["workers_after"], e["reason"]) for e in events] == [(0, 1, "cluster start")]


def test_a_scheduler_that_refuses_the_plugin_leaves_the_samples(
    mongo_db: Database, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    results = ResultStore(mongo_db)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        def refuse(plugin: object) -> None:  # what a scheduler without voxflow installed answers
            raise ModuleNotFoundError("No module named 'tasks'")

        monkeypatch.setattr(client, "register_plugin", refuse)
        monitor = _monitor(client, mongo_db, redis_client, "run-sampled", bounds=Bounds(1, 2))
        monitor.observe(backlog=3)
        cluster.scale(2)
        client.wait_for_workers(2, timeout=30)
        monitor.observe(backlog=1)
    events = sorted(results.find_scaling_events(run_id="run-sampled"), key=lambda e: e["time"])
    assert [(e["workers_before"], e["workers_after"], e["reason"]) for e in events] == [(0, 1, "cluster start"), (1, 2, "worker added")]
    assert "refused voxflow's worker-changes plugin" in caplog.text and monitor.max_workers_seen == 2


def test_on_an_existing_cluster_the_first_event_is_the_run_attaching_to_its_workers(mongo_db: Database, redis_client: redis.Redis) -> None:
    # Every run on an existing cluster was recorded as its "cluster start", from no workers.
    results = ResultStore(mongo_db)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=30)
        monitor = _monitor(client, mongo_db, redis_client, "run-attached", bounds=Bounds(1, None, cluster.scheduler_address))
        monitor.observe(backlog=500)
        cluster.scale(3)
        client.wait_for_workers(3, timeout=30)
        monitor.observe(backlog=0)
    events = sorted(results.find_scaling_events(run_id="run-attached"), key=lambda e: e["time"])
    assert [(e["workers_before"], e["workers_after"], e["reason"]) for e in events] == [(2, 2, "attached"), (2, 3, "worker added")], events
    advice = events[0]["recommendation"]
    assert advice["action"] == "scale_out" and f"for the operator of the Dask cluster at {cluster.scheduler_address}" in advice["reason"]


def test_an_existing_clusters_task_slots_are_its_workers_threads_as_they_come_and_go(mongo_db: Database, redis_client: redis.Redis) -> None:
    # A 2-core client (VOXFLOW_DASK_MAX_WORKERS=2) sized its chunks and the chunks in flight for 2 workers, on a cluster of any size.
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=30)
        existing = _monitor(client, mongo_db, redis_client, "run-slots", bounds=Bounds(1, None, cluster.scheduler_address))
        own = _monitor(client, mongo_db, redis_client, "run-own-slots", bounds=Bounds(1, 2))
        assert (existing.slots, own.slots) == (4, 2)  # read as the monitor starts: before its first sample
        cluster.scale(3)
        client.wait_for_workers(3, timeout=30)
        existing.observe(backlog=10)
        own.observe(backlog=10)
        assert (existing.slots, own.slots) == (6, 2)  # voxflow's own cluster: sized for its maximum throughout
