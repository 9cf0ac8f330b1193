"""``voxflow counts rebuild``: an operator repairs the dashboard's rollups after a crash, never while a run writes."""

from __future__ import annotations

import json
import re
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from pymongo.collection import Collection
from pymongo.database import Database

import store.counts
from store.counts import COUNTS, SCORES, add_counts, bucket_start, prediction_increments, rebuild_counts
from store.mongo import ResultStore
from tests.helpers import ended_process
from tests.store.conftest import rollup
from tests.voxflow_cli import assert_one_line_error, bare_env, last_json, run_cli
from voxflow import services
from voxflow.cli import build_parser, cmd_counts
from voxflow.errors import LockError
from voxflow.settings import Settings

T0 = datetime(2026, 11, 27, 9, 5, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=20)  # the next quarter hour but one
T2 = T0 + timedelta(days=1)


def prediction(i: int, created_at: datetime, *, score: float, run_id: str = "run-ok") -> dict[str, Any]:
    return {"audio_sha256": f"{i:064x}", "model_version": "m1", "run_id": run_id, "score": score, "threshold": 0.5, "created_at": created_at}


def rejected(i: int, created_at: datetime, run_id: str = "run-ok") -> dict[str, Any]:
    return {"run_id": run_id, "path": f"/bad/{i}.wav", "stage": "decode", "reason": "empty file", "created_at": created_at}


def score_rollup(db: Database) -> dict[str, dict]:
    """The score_counts rollup: ``_id`` -> its fields, zeros left out (an ``$inc`` writes only the bins it adds to)."""
    return {doc["_id"]: {k: v for k, v in doc.items() if k != "_id" and v} for doc in db[SCORES].find()}


def score_id(when: datetime) -> str:
    return f"m1|{int(bucket_start(when).timestamp())}"


def this_process() -> dict[str, Any]:
    """The owner fields of a run whose process lives: this test's own."""
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": me.pid, "pid_started": me.create_time()}


def drifted(results: ResultStore, db: Database) -> tuple[dict, dict]:
    """Results stored with their counts, then the drift crashes leave; returns both rollups as they should be.

    - ``run-killed``, still "running", its process gone: its second chunk reached ``predictions`` and
      ``quarantine``, but the process died before its ``$inc`` (inserted here without counting, as that leaves it);
    - a retried ``$inc`` whose first attempt had landed counted T0's quarter hour twice;
    - the ``score_counts`` document of T2's quarter hour was lost.
    """
    results.insert_predictions([prediction(i, T0, score=0.1 * i) for i in range(10)])  # 0.5 .. 0.9 positive
    results.insert_quarantine([rejected(i, T0) for i in range(2)])
    results.insert_predictions([prediction(100 + i, T2, score=0.9) for i in range(3)])
    results.start_run({"run_id": "run-killed", "status": "running", "started_at": T1, **ended_process()})
    results.insert_predictions([prediction(200 + i, T1, score=0.2, run_id="run-killed") for i in range(4)])
    kept_scores = score_rollup(db)

    db["predictions"].insert_many([prediction(300 + i, T1, score=0.95, run_id="run-killed") for i in range(5)])
    db["quarantine"].insert_many([rejected(300, T1, run_id="run-killed")])
    add_counts(db[COUNTS], prediction_increments([prediction(i, T0, score=0.1 * i) for i in range(10)]))
    db[SCORES].delete_one({"_id": score_id(T2)})
    assert rollup(db) == {bucket_start(T0): (20, 10, 2), bucket_start(T1): (4, 0, 0), bucket_start(T2): (3, 3, 0)}

    expected_counts = {bucket_start(T0): (10, 5, 2), bucket_start(T1): (9, 5, 1), bucket_start(T2): (3, 3, 0)}
    expected_scores = {**kept_scores, score_id(T1): {**kept_scores[score_id(T1)], "b09": 5, "positives": 5}}
    return expected_counts, expected_scores


@pytest.fixture
def results(mongo_db: Database) -> ResultStore:
    store_ = ResultStore(mongo_db, retry_s=30)
    store_.ensure_indexes()
    return store_


@pytest.fixture
def settings(test_settings: Settings, mongo_db: Database) -> Settings:
    """The session's settings on the test's own database."""
    return test_settings.model_copy(update={"mongo_db": mongo_db.name})


def counts_rebuild(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Run ``voxflow counts rebuild ARGV`` in this process; its stdout and stderr."""
    assert cmd_counts(build_parser().parse_args(["counts", "rebuild", *argv]), settings) == 0
    return capsys.readouterr()


def test_a_rebuild_closes_the_crashed_run_repairs_both_rollups_and_says_what_changed(
    results: ResultStore, mongo_db: Database, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    expected_counts, expected_scores = drifted(results, mongo_db)
    out, err = counts_rebuild(settings, capsys, "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert len(out.strip().splitlines()) == 1 and err == ""

    assert rollup(mongo_db) == expected_counts
    assert score_rollup(mongo_db) == expected_scores
    # The index the rebuild's drop took is back.
    assert [("model_version", 1), ("t", 1)] in [index["key"] for index in mongo_db[SCORES].index_information().values()]
    crashed = mongo_db["runs"].find_one({"run_id": "run-killed"})
    assert (crashed["status"], crashed["scored"], crashed["quarantined"]) == ("crashed", 9, 1)
    assert report == {
        "database": mongo_db.name, "closed_runs": ["run-killed"], "forced": [], "started_meanwhile": [], "quarter_hours": 3,
        COUNTS: {
            "documents": 3, "changed": 2,  # T0's (counted twice) and T1's (the killed chunk)
            "before": {"predictions": 27, "positives": 13, "quarantined": 2},
            "after": {"predictions": 22, "positives": 13, "quarantined": 3},
        },
        SCORES: {"documents": 3, "changed": 2, "before": {"clips": 14, "positives": 5}, "after": {"clips": 22, "positives": 13}},
    }

    # Nothing drifted now: a second rebuild changes nothing and closes nothing.
    again = json.loads(counts_rebuild(settings, capsys, "--json")[0])
    assert (again["closed_runs"], again[COUNTS]["changed"], again[SCORES]["changed"]) == ([], 0, 0)
    assert again[COUNTS]["before"] == again[COUNTS]["after"] == report[COUNTS]["after"]


def test_the_text_report_names_the_closed_run_and_each_totals_change(
    results: ResultStore, mongo_db: Database, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    drifted(results, mongo_db)
    out, err = counts_rebuild(settings, capsys)
    assert err == ""
    assert out.splitlines() == [
        "closed abandoned run run-killed as crashed (its process had ended)",
        f"rebuilt {COUNTS} (3 quarter hours, 2 changed) and {SCORES} (3 quarter hours by model, 2 changed) in database {mongo_db.name}",
        f"{COUNTS}  predictions 27 -> 22 (-5), positives 13 -> 13, quarantined 2 -> 3 (+1)",
        f"{SCORES}       clips 14 -> 22 (+8), positives 5 -> 13 (+8)",
    ]


def test_an_empty_database_rebuilds_to_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads(counts_rebuild(settings, capsys, "--json")[0])
    assert report["quarter_hours"] == 0
    assert report[COUNTS] == {"documents": 0, "changed": 0, "before": dict.fromkeys(("predictions", "positives", "quarantined"), 0),
                              "after": dict.fromkeys(("predictions", "positives", "quarantined"), 0)}


def test_a_live_run_refuses_the_rebuild_in_one_line_and_force_overrides(
    results: ResultStore, mongo_db: Database, test_settings: Settings, tmp_path: Path
) -> None:
    expected_counts, expected_scores = drifted(results, mongo_db)
    results.start_run({"run_id": "run-live", "status": "running", "started_at": T2, **this_process()})
    env = bare_env(tmp_path, VOXFLOW_MONGO_URI=services.mongo_uri(test_settings), VOXFLOW_MONGO_DB=mongo_db.name)
    drift = rollup(mongo_db)

    refused = run_cli(["counts", "rebuild"], env, timeout=120)
    assert_one_line_error(refused, f"not rebuilding the counts while runs are running (1: run-live (pid {this_process()['pid']} on {socket.gethostname()})): ")
    assert "add --force if these have ended" in refused.stderr and "another host" not in refused.stderr
    assert refused.stdout == ""
    assert rollup(mongo_db) == drift  # untouched
    # The abandoned run was closed all the same; the live one was not.
    assert {run["run_id"]: run["status"] for run in mongo_db["runs"].find()} == {"run-killed": "crashed", "run-live": "running"}

    forced = last_json(run_cli(["counts", "rebuild", "--force", "--json"], env, timeout=120))
    assert (forced["forced"], forced["closed_runs"], forced["started_meanwhile"]) == (["run-live"], [], [])
    assert rollup(mongo_db) == expected_counts and score_rollup(mongo_db) == expected_scores
    assert mongo_db["runs"].find_one({"run_id": "run-live"})["status"] == "running"  # --force closes nothing


def test_a_run_on_another_host_refuses_too_since_its_process_cannot_be_seen(
    results: ResultStore, mongo_db: Database, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    here = socket.gethostname()
    results.start_run({"run_id": "run-far", "status": "running", "started_at": T0, **ended_process(), "host": f"{here}-other"})
    other = re.escape(f"{here}-other")
    with pytest.raises(LockError, match=rf"\(1: run-far \(pid \d+ on {other}\)\).*\(a run started on another host than {re.escape(here)} is never closed from here"):
        cmd_counts(build_parser().parse_args(["counts", "rebuild"]), settings)
    assert mongo_db["runs"].find_one({"run_id": "run-far"})["status"] == "running"
    text = counts_rebuild(settings, capsys, "--force")[0]
    assert text.splitlines()[0] == f"--force: rebuilt while 1 run(s) were running: run-far (pid {mongo_db['runs'].find_one()['pid']} on {here}-other)"


def test_a_run_started_during_the_rebuild_is_warned_about(
    results: ResultStore, mongo_db: Database, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results.insert_predictions([prediction(i, T0, score=0.7) for i in range(3)])

    def a_run_starts_meanwhile(db: Database) -> int:
        ResultStore(db).start_run({"run_id": "run-new", "status": "running", "started_at": T1, **this_process()})
        return rebuild_counts(db)

    monkeypatch.setattr(store.counts, "rebuild_counts", a_run_starts_meanwhile)
    out, err = counts_rebuild(settings, capsys, "--json")
    assert json.loads(out)["started_meanwhile"] == ["run-new"]
    assert err.startswith("voxflow: warning: 1 run(s) started while the counts were rebuilt (run-new (pid ") and err.count("\n") == 1
    assert "run `voxflow counts rebuild` again once they have ended" in err


def test_a_count_landing_between_the_drop_and_the_rebuilt_documents_is_an_error_not_a_traceback(
    results: ResultStore, mongo_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    results.insert_predictions([prediction(i, T0, score=0.7) for i in range(3)])
    real = Collection.insert_many

    def a_live_run_counts_first(self: Collection, documents: list[dict], **kwargs: Any) -> Any:
        if self.name == COUNTS:  # a run's $inc upsert, between rebuild_counts' drop and its insert
            add_counts(self, prediction_increments([prediction(50, T0, score=0.7)]))
        return real(self, documents, **kwargs)

    monkeypatch.setattr(Collection, "insert_many", a_live_run_counts_first)
    with pytest.raises(LockError, match=r"^results were counted while the counts were rebuilt .* run `voxflow counts rebuild` again once"):
        cmd_counts(build_parser().parse_args(["counts", "rebuild", "--force"]), settings)


def test_help_says_what_it_repairs_and_that_force_is_unsafe(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["counts", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{rebuild}" in text and "prediction_counts, score_counts" in text
    assert "refuses (exit 2) while any run is still running" in text
    assert "--force" in text and "UNSAFE while a run stores results" in text
