"""The Runs page on runs that have not finished: recorded by the flows' own ``recorded_run``."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np
import psutil
import pytest
from pymongo.database import Database
from streamlit.testing.v1 import AppTest

from models.drift import InputTally, compare, profile_counts
from models.registry import load_bundle
from store.mongo import ResultStore
from store.runs import close_abandoned_runs
from tasks.persist import recorded_run
from tests.dashboard.conftest import metrics
from tests.helpers import above_training, like_training
from voxflow import services
from voxflow.settings import Settings


def _env(settings: Settings, db: Database) -> dict[str, str]:
    """The dashboard's environment: the session's servers, the test's own database."""
    return {
        "VOXFLOW_HOME": str(settings.home), "VOXFLOW_MONGO_URI": services.mongo_uri(settings),
        "VOXFLOW_MONGO_DB": db.name, "VOXFLOW_REDIS_URL": services.redis_url(settings),
    }


def test_running_failed_and_crashed_runs_show_their_status_and_what_they_stored(
    mongo_db: Database, test_settings: Settings, open_page: Callable[..., AppTest],
) -> None:
    env = _env(test_settings, mongo_db)
    results, card = ResultStore(mongo_db), load_bundle(test_settings.models_dir).card
    with pytest.raises(RuntimeError), recorded_run(results, card, test_settings, run_id="r-failed", source="/in/a"):
        raise RuntimeError("disk full")
    with recorded_run(results, card, test_settings, run_id="r-running", source="/in/b"):
        app = open_page("runs", env)  # the newest run is selected first
        assert app.selectbox[0].value == "r-running"
        shown = metrics(app)
        assert (shown["Status"], shown["Scored"], shown["Quarantined"], shown["Wall time"], shown["Throughput"]) == ("running", "—", "—", "—", "—")
        assert any(i.value.startswith("Still running") for i in app.info)

        results.set_run_status("r-running", "paused")  # a drain while a forget runs (flows/drain.py, give_way)
        app.run()
        assert metrics(app)["Status"] == "paused"
        assert [i.value for i in app.info if i.value.startswith("Paused")] == [
            "Paused while recordings are forgotten (voxflow forget): it goes on once the forget is done."
        ]
        results.set_run_status("r-running", "running")

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


def test_a_runs_input_drift_shows_in_the_table_and_as_a_warning_when_features_shifted(
    mongo_db: Database, test_settings: Settings, open_page: Callable[..., AppTest],
) -> None:
    env = _env(test_settings, mongo_db)
    card = load_bundle(test_settings.models_dir).card
    shifted, same = InputTally.of(card), InputTally.of(card)
    features = card.input_profile["features"]
    like = np.column_stack([like_training(features[name]) for name in card.feature_names])
    same.add(profile_counts(card.input_profile, like, card.feature_names), len(like))
    above = np.column_stack([above_training(features[name], 40) for name in card.feature_names])
    shifted.add(profile_counts(card.input_profile, above, card.feature_names), len(above))
    results = ResultStore(mongo_db)
    now = datetime.now(timezone.utc)
    for run_id, tally, started in (("r-same", same, now - timedelta(minutes=2)), ("r-shifted", shifted, now)):
        results.start_run({"run_id": run_id, "status": "running", "started_at": started, "source": "/in"})
        report = compare(tally, psi_limit=0.25, alpha=0.01)
        results.finish_run(run_id, {"status": "completed", "scored": 40, "finished_at": started, "input_drift": report.as_doc()})
    shifted_doc = mongo_db.runs.find_one({"run_id": "r-shifted"})["input_drift"]
    # voiced_fraction is not: 63 % of VOICED's recordings are in its top bin already.
    assert shifted_doc["shifted_count"] == 88 and shifted_doc["brief"] == "88/89 shifted"

    app = open_page("runs", env)
    assert app.dataframe[0].value.set_index("run_id")["input_drift"].to_dict() == {"r-shifted": "88/89 shifted", "r-same": "0/89 shifted"}
    assert [w.value for w in app.warning] == [f"Input drift: {shifted_doc['summary']}"]
    app.selectbox[0].select("r-same").run()
    assert not app.warning and any(c.value.startswith("Input drift: none of 89 features shifted") for c in app.caption)
