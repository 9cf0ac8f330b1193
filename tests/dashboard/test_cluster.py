"""Reading a Dask scheduler: per-worker CPU and memory, tasks, and the Dask dashboard link."""

from __future__ import annotations

import time

import dask
import pytest
from distributed import LocalCluster

from dashboard.cluster import read_scheduler, snapshot


def test_snapshot_from_scheduler_info() -> None:
    info = {
        "services": {"dashboard": 8787},
        "workers": {
            "tcp://10.0.0.5:4000": {"name": "w-a", "memory_limit": 4e9, "metrics": {"cpu": 80.0, "memory": 3.6e9, "task_counts": {"executing": 1, "ready": 4}}},
            "tcp://10.0.0.6:4000": {"name": "w-b", "memory_limit": 4e9, "metrics": {"cpu": 40.0, "memory": 1e9, "task_counts": {"executing": 1}}},
        },
    }
    shot = snapshot(info, "tcp://10.0.0.1:8786")
    assert shot.workers["worker"].tolist() == ["w-a", "w-b"]
    assert (shot.cpu_pct, shot.memory_pct, shot.processing, shot.queued) == (60.0, 90.0, 2, 4)
    assert shot.dashboard_url == "http://10.0.0.1:8787/status"
    empty = snapshot({"workers": {}}, "tcp://10.0.0.1:8786")
    assert empty.cpu_pct is None and empty.dashboard_url is None
    # Behind a container network the browser's way in is not the scheduler's name: Dask's own link template says it.
    with dask.config.set({"distributed.dashboard.link": "http://127.0.0.1:{port}/status"}):
        assert snapshot(info, "tcp://dask-scheduler:8786").dashboard_url == "http://127.0.0.1:8787/status"


def test_reads_a_live_scheduler_and_gives_up_on_a_dead_one() -> None:
    with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, protocol="tcp", dashboard_address="127.0.0.1:0") as cluster:
        shot = read_scheduler(cluster.scheduler_address)
        assert shot is not None and len(shot.workers) == 2
        assert shot.dashboard_url == cluster.dashboard_link
        assert (shot.workers["memory_limit_mb"] > 0).all() and (shot.workers["memory_mb"] > 0).all()
    assert read_scheduler("tcp://127.0.0.1:9", timeout_s=0.5) is None


@pytest.mark.timeout(30)
def test_gives_up_on_a_scheduler_that_accepts_and_never_answers(silent_listener: str) -> None:
    # Client(address, timeout=...) bounds the connection, not Dask's handshake after it: the page waited for good.
    started = time.monotonic()
    assert read_scheduler(silent_listener, timeout_s=1.0) is None
    assert time.monotonic() - started < 5
