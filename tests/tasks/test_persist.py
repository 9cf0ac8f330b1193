"""The stores a flow run opens."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import soundfile as sf
from prefect.exceptions import TerminationSignal
from pymongo.database import Database

from store.mongo import ResultStore
from features.synth import synth_vowel
from models.artifact import read_bundle
from models.registry import SHIPPED_DIR
from tasks.chunk import AudioPolicy
from tasks.extract import score_chunk
from tasks.ingest import Candidate, hash_candidates
from store.runs import close_abandoned_runs
from tasks.persist import open_stores, persist_scored, recorded_run
from voxflow.errors import DatabaseError
from voxflow.interrupts import Terminated
from voxflow.settings import Settings


def _ended(threads: list[threading.Thread], *, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(t.is_alive() for t in threads)


def _new_mongo_monitors(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in set(threading.enumerate()) - before if t.name.startswith("pymongo")]


def test_stores_close_their_clients_when_the_run_ends(test_settings: Settings, redis_client: object) -> None:
    # Left open, pymongo's exit handler waits for its monitor threads: ~0.4 s at the end of every command.
    before = set(threading.enumerate())
    with open_stores(test_settings) as stores:
        stores.mongo.admin.command("ping")
        stores.redis.ping()
        monitors = _new_mongo_monitors(before)
        assert monitors, "the run's MongoClient started no monitor threads"
    assert _ended(monitors)


def test_a_failure_while_opening_closes_the_clients_opened_so_far(
    test_settings: Settings, redis_client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: ResultStore) -> None:
        raise OSError("counts could not be ensured")  # after ensure_indexes: the client is connected

    monkeypatch.setattr(ResultStore, "ensure_counts", unreachable)
    before = set(threading.enumerate())
    # Its traceback keeps open_stores' frame alive, as a caller that logs or stores the error does.
    with pytest.raises(OSError, match="counts could not be ensured") as failed:
        open_stores(test_settings)
    monitors = _new_mongo_monitors(before)
    assert monitors and _ended(monitors), failed.traceback


def test_the_prediction_cache_is_the_databases_own(test_settings: Settings, redis_client: object) -> None:
    doc = {"audio_sha256": uuid.uuid4().hex * 2, "model_version": "m1", "score": 0.5, "label": "healthy", "run_id": "r"}
    names = [f"vxtest_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with open_stores(test_settings.model_copy(update={"mongo_db": names[0]})) as dba:
        dba.cache.put_many([doc])
        assert dba.cache.get_many([doc["audio_sha256"]], "m1") == {doc["audio_sha256"]: doc}
        dba.mongo.drop_database(names[0])
    with open_stores(test_settings.model_copy(update={"mongo_db": names[1]})) as dbb:
        assert dbb.cache.get_many([doc["audio_sha256"]], "m1") == {}
        dbb.mongo.drop_database(names[1])


def test_only_runs_whose_process_on_this_host_ended_are_closed(mongo_db: Database) -> None:
    results = ResultStore(mongo_db)
    results.ensure_indexes()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(ended.pid).create_time()
    ended.wait()
    here, me = socket.gethostname(), psutil.Process()
    runs = {
        "dead": {"host": here, "pid": ended.pid, "pid_started": started},
        "alive": {"host": here, "pid": me.pid, "pid_started": me.create_time()},
        "reused-pid": {"host": here, "pid": me.pid, "pid_started": me.create_time() - 3600},  # same pid, another process
        "elsewhere": {"host": f"{here}-other", "pid": ended.pid, "pid_started": started},
    }
    for run_id, owner in runs.items():
        results.start_run({"run_id": run_id, "status": "running", **owner})
    results.start_run({"run_id": "dead-paused", "status": "running", "host": here, "pid": ended.pid, "pid_started": started})
    results.set_run_status("dead-paused", "paused")  # a drain killed while it paused for a forget
    results.insert_predictions([{"audio_sha256": "a" * 64, "model_version": "m", "run_id": "dead", "score": 0.5}])

    assert sorted(close_abandoned_runs(results)) == ["dead", "dead-paused", "reused-pid"]
    status = {run["run_id"]: run for run in mongo_db.runs.find()}
    assert {k: status[k]["status"] for k in [*runs, "dead-paused"]} == {
        "dead": "crashed", "alive": "running", "reused-pid": "crashed", "elsewhere": "running", "dead-paused": "crashed"
    }
    assert (status["dead"]["scored"], status["dead"]["quarantined"]) == (1, 0)
    assert close_abandoned_runs(results) == []


CARD = SimpleNamespace(version="m", feature_version=3)  # what recorded_run reads of a model card
AGAIN = "before the run finished; a re-run finishes the rest"


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (KeyboardInterrupt(), "interrupted", f"Ctrl-C (SIGINT) {AGAIN}"),
        (Terminated(signal.SIGHUP), "interrupted", f"SIGHUP {AGAIN}"),  # the terminal closed
        (TerminationSignal(signal.SIGTERM), "interrupted", f"SIGTERM {AGAIN}"),  # Prefect's, inside a flow run
        # Rich's, under Prefect's console log, once the output pipe is gone: the worker relaying it was killed.
        (SystemExit(1), "interrupted", f"SystemExit 1 (its output gone: a worker killed?) {AGAIN}"),
        (ValueError("boom"), "failed", "ValueError: boom"),
    ],
)
def test_a_run_an_exception_ends_is_recorded_with_what_it_stored(
    mongo_db: Database, test_settings: Settings, raised: BaseException, status: str, error: str
) -> None:
    results = ResultStore(mongo_db)
    results.ensure_indexes()
    with pytest.raises(type(raised)):
        with recorded_run(results, CARD, test_settings, run_id="r1", source="in") as so_far:
            so_far.update(seen=70, skipped=3)  # what discovery and skip-known found, before scoring
            results.insert_predictions([{"audio_sha256": "a" * 64, "model_version": "m", "run_id": "r1", "score": 0.5}])
            time.sleep(0.05)
            raise raised
    run = mongo_db.runs.find_one({"run_id": "r1"})
    assert (run["status"], run["error"], run["scored"]) == (status, error, 1)
    # `voxflow runs` showed "-" for these: what was known when the run ended is kept.
    assert (run["seen"], run["skipped"], run["quarantined"], run["duplicates"]) == (70, 3, 0, 0) and 0.05 <= run["wall_s"] < 5


def test_when_mongodb_fails_the_run_its_counts_are_not_asked_and_a_refused_record_leaves_the_error_as_it_is(
    mongo_db: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = ResultStore(mongo_db)
    results.ensure_indexes()
    monkeypatch.setattr(results, "stored_counts", lambda run_id: pytest.fail("counted on a database that failed"))
    with pytest.raises(DatabaseError, match="unreachable"):
        with recorded_run(results, CARD, test_settings, run_id="r1", source="in"):
            raise DatabaseError("MongoDB unreachable after 30 s (insert 8 into predictions): connection refused")
    assert mongo_db.runs.find_one({"run_id": "r1"})["status"] == "failed"
    monkeypatch.undo()

    def full_disk(run_id: str, fields: dict) -> None:
        raise DatabaseError(f"MongoDB refused an operation (finish run {run_id}): database or disk is full")

    # The disk that failed the run's Parquet write refuses its record too: the command still says what failed first.
    with pytest.raises(OSError, match="No space left on device"):
        with recorded_run(results, CARD, test_settings, run_id="r2", source="in"):
            monkeypatch.setattr(results, "finish_run", full_disk)
            raise OSError(28, "No space left on device")
    assert mongo_db.runs.find_one({"run_id": "r2"})["status"] == "running"  # closed as crashed by the next run on this host


def test_a_prediction_another_run_stored_first_is_not_cached_under_this_one(test_settings: Settings, tmp_path: Path, redis_client: object) -> None:
    # Two runs scoring the same file at once: the one that stores it second cached its own listing over the first's,
    # and the next run then named a run that stored nothing as the one that scored the file.
    clip = tmp_path / "m1.wav"
    sf.write(clip, synth_vowel(f0_hz=140, duration_s=1.0, sr=16_000, seed=5), 16_000)
    bundle = read_bundle(SHIPPED_DIR)
    policy = AudioPolicy(sample_rate=16_000, min_duration_s=0.5, max_duration_s=30.0, silence_dbfs=-60.0, clipping_fraction=0.01, file_timeout_s=60.0)
    table = score_chunk(0, hash_candidates([Candidate(clip)], max_file_bytes=10**8).files, policy, bundle).table
    sha = table.column("audio_sha256")[0].as_py()
    with open_stores(test_settings.model_copy(update={"mongo_db": f"t_{uuid.uuid4().hex[:10]}"})) as stores:
        assert persist_scored(stores, table, [], run_id="first", chunk_id=0, card=bundle.card) == 1
        assert persist_scored(stores, table, [], run_id="second", chunk_id=0, card=bundle.card) == 0
        assert stores.cache.get_many([sha], bundle.card.version)[sha]["run_id"] == "first"
