"""The stores a flow run opens."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pytest
from pymongo.database import Database

from store.mongo import ResultStore
from tasks.persist import close_abandoned_runs, open_stores
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
    results.insert_predictions([{"audio_sha256": "a" * 64, "model_version": "m", "run_id": "dead", "score": 0.5}])

    assert sorted(close_abandoned_runs(results)) == ["dead", "reused-pid"]
    status = {run["run_id"]: run for run in mongo_db.runs.find()}
    assert {k: status[k]["status"] for k in runs} == {"dead": "crashed", "alive": "running", "reused-pid": "crashed", "elsewhere": "running"}
    assert (status["dead"]["scored"], status["dead"]["quarantined"]) == (1, 0)
    assert close_abandoned_runs(results) == []
