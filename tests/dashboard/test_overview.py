"""The Overview's scaling triggers read a worker sample only while it can describe a live cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from streamlit.testing.v1 import AppTest

from dashboard import queries
from store.cache import connect_redis
from tests.dashboard.conftest import metrics
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
