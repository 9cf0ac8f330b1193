"""The Overview's scaling triggers read a worker sample only while it can describe a live cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from streamlit.testing.v1 import AppTest

from dashboard import queries
from store.cache import connect_redis
from store.queue import FileQueue, QueueItem
from tests.dashboard.conftest import metrics
from tests.voxflow_cli import env_db
from voxflow import services
from voxflow.settings import Settings


def test_cpu_and_memory_come_only_from_a_recent_worker_sample(empty_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    env = {**empty_env, "VOXFLOW_DASK_MAX_WORKERS": "4"}
    client = connect_redis(services.redis_url(Settings(home=Path(env["VOXFLOW_HOME"]))))
    busy = {"workers": 1, "cpu_pct": 97.0, "memory_pct": 40.0}
    try:
        # The last sample of a run that ended five minutes ago: its cluster is gone, it says nothing of now.
        client.xadd(queries.WORKERS_STREAM, busy, id=f"{int(time.time() * 1000) - 300_000}-0")
        shown = metrics(app := open_page("overview", env))
        assert (shown["CPU"], shown["Memory"]) == ("—", "—")
        assert [s.value for s in app.success] == ["Recommendation: Hold: no change — no trigger firing"]

        client.xadd(queries.WORKERS_STREAM, busy)  # a run going now
        shown = metrics(app := open_page("overview", env))
        assert (shown["CPU"], shown["Memory"]) == ("97%", "40%")
        [advice] = [w.value for w in app.warning]
        assert advice.startswith("Recommendation: Scale out") and "cpu" in advice.lower()
    finally:
        client.delete(queries.WORKERS_STREAM)
        client.close()


def test_the_backlog_counts_a_running_analyzes_files_and_not_a_drains_twice(empty_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    # The backlog came from the queue only: "—" (not measured) beside an analyze run's 300 files waiting.
    client = connect_redis(services.redis_url(Settings(home=Path(empty_env["VOXFLOW_HOME"]))))
    runs = env_db(empty_env)["runs"]
    try:
        client.xadd(queries.WORKERS_STREAM, {"run_id": "analyze-run", "workers": 1, "backlog": 300})
        assert metrics(open_page("overview", empty_env))["Backlog"] == "300 files"
        FileQueue(client).enqueue([QueueItem(path=f"/data/{i}.wav") for i in range(40)])
        assert metrics(open_page("overview", empty_env))["Backlog"] == "340 files"
        # A drain's files are the queue's entries it holds: its sample adds nothing to the queue's count.
        runs.insert_one({"run_id": "drain-run", "source": queries.QUEUE_STREAM, "status": "running"})
        client.xadd(queries.WORKERS_STREAM, {"run_id": "drain-run", "workers": 1, "backlog": 40})
        assert metrics(open_page("overview", empty_env))["Backlog"] == "40 files"
    finally:
        client.delete(queries.WORKERS_STREAM, queries.QUEUE_STREAM)
        client.close()
