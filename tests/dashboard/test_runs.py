"""The Runs page on runs that have not finished: recorded by the flows' own ``recorded_run``."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Callable

import psutil
import pytest
from pymongo.database import Database
from streamlit.testing.v1 import AppTest

from models.registry import load_bundle
from store.mongo import ResultStore
from store.runs import close_abandoned_runs
from tasks.persist import recorded_run
from tests.dashboard.conftest import metrics
from voxflow import services
from voxflow.settings import Settings


def test_running_failed_and_crashed_runs_show_their_status_and_what_they_stored(
    mongo_db: Database, test_settings: Settings, open_page: Callable[..., AppTest],
) -> None:
    env = {
        "VOXFLOW_HOME": str(test_settings.home), "VOXFLOW_MONGO_URI": services.mongo_uri(test_settings),
        "VOXFLOW_MONGO_DB": mongo_db.name, "VOXFLOW_REDIS_URL": services.redis_url(test_settings),
    }
    results, card = ResultStore(mongo_db), load_bundle(test_settings.models_dir).card
    with pytest.raises(RuntimeError), recorded_run(results, card, test_settings, run_id="r-failed", source="/in/a"):
        raise RuntimeError("disk full")
    with recorded_run(results, card, test_settings, run_id="r-running", source="/in/b"):
        app = open_page("runs", env)  # the newest run is selected first
        assert app.selectbox[0].value == "r-running"
        shown = metrics(app)
        assert (shown["Status"], shown["Scored"], shown["Quarantined"], shown["Wall time"], shown["Throughput"]) == ("running", "—", "—", "—", "—")
        assert any(i.value.startswith("Still running") for i in app.info)

        app.selectbox[0].select("r-failed").run()
        assert not app.exception, [e.value for e in app.exception]
        shown = metrics(app)
        # what it stored before it failed, and how long it ran (recorded since 2026-12-07)
        assert (shown["Status"], shown["Scored"], shown["Quarantined"], shown["Wall time"]) == ("failed", "0", "0", "0.0 s")
        assert [w.value for w in app.warning] == ["Failed: RuntimeError: disk full"]
        assert app.dataframe[0].value["status"].tolist() == ["running", "failed"]

        ended = subprocess.Popen([sys.executable, "-c", "pass"])  # a run whose process was killed: closed by the next run
        results.start_run({"run_id": "r-killed", "status": "running", "started_at": datetime.now(timezone.utc) - timedelta(days=1),
                           "host": socket.gethostname(), "pid": ended.pid, "pid_started": psutil.Process(ended.pid).create_time()})
        ended.wait()
        assert close_abandoned_runs(results) == ["r-killed"]
        app.run()
        app.selectbox[0].select("r-killed").run()
        assert (metrics(app)["Status"], metrics(app)["Scored"]) == ("crashed", "0")
        assert [w.value for w in app.warning] == [f"Crashed: its process (pid {ended.pid} on {socket.gethostname()}) ended before the run finished; a re-run finishes the rest"]
