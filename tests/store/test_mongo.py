"""ResultStore against a real MongoDB wire-protocol server (embedded nx-27017 or VOXFLOW_TEST_MONGO_URI)."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

import store.mongo
from store.counts import COUNTS, SCORES, rebuild_counts
from store.mongo import PredictionFilter, ResultStore, _retrying, backoff_delays, connect_mongo, open_database
from tests.store.conftest import rollup
from voxflow import services
from voxflow.errors import DatabaseError, ServiceError
from voxflow.settings import Settings

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def prediction(i: int, *, model_version: str = "m1", run_id: str = "run-a", minutes: int = 0) -> dict:
    return {
        "audio_sha256": f"{i:064x}",
        "model_version": model_version,
        "run_id": run_id,
        "score": round(i / 10, 2),
        "label": "pathological" if i % 2 else "healthy",
        "created_at": T0 + timedelta(minutes=minutes),
    }


def test_duplicates_count_as_already_stored(results: ResultStore, mongo_db: Database) -> None:
    first = [prediction(i) for i in range(3)]
    assert results.insert_predictions(first) == 3
    assert results.insert_predictions([prediction(1), prediction(2), prediction(3)]) == 1
    assert mongo_db["predictions"].count_documents({}) == 4
    assert all("_id" not in doc for doc in first)


def test_unique_index_is_enforced(results: ResultStore, mongo_db: Database) -> None:
    results.insert_predictions([prediction(7)])
    with pytest.raises(DuplicateKeyError):
        mongo_db["predictions"].insert_one(prediction(7, run_id="another-run"))
    assert results.insert_predictions([prediction(7, model_version="m2")]) == 1


def test_ensure_indexes_is_repeatable(results: ResultStore) -> None:
    results.ensure_indexes()


def test_runs_read_back_with_utc_times_set_on_finishing_too(results: ResultStore) -> None:
    results.start_run({"run_id": "r1", "status": "running", "started_at": T0})
    results.finish_run("r1", {"status": "completed", "finished_at": T0 + timedelta(seconds=90, milliseconds=250)})
    [run] = results.find_runs()
    assert (run["started_at"], run["finished_at"]) == (T0, T0 + timedelta(seconds=90, milliseconds=250))
    assert run["finished_at"].tzinfo is not None and run["started_at"].tzinfo is not None


def test_stored_listings_of_one_model_version_across_lookup_batches(results: ResultStore) -> None:
    stored = [{**prediction(i), "path": f"/in/{i}.wav", "subject_id": f"S{i}", "reference_label": None} for i in range(2_500)]
    assert results.insert_predictions(stored) == 2_500
    asked = [doc["audio_sha256"] for doc in stored[::2]] + [f"{i:064x}" for i in range(10_000, 10_050)]
    assert results.stored_listings(asked, "m1") == {
        doc["audio_sha256"]: {"path": doc["path"], "subject_id": doc["subject_id"], "reference_label": None, "run_id": "run-a"} for doc in stored[::2]
    }
    assert results.stored_listings(asked, "m2") == {}
    assert results.stored_listings([], "m1") == {}


def test_find_predictions_filters_newest_first(results: ResultStore) -> None:
    results.insert_predictions([prediction(i, run_id="run-a" if i < 6 else "run-b", minutes=i) for i in range(10)])
    run_a = results.find_predictions(PredictionFilter(run_id="run-a"))
    assert [doc["score"] for doc in run_a] == [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    assert all("_id" not in doc for doc in run_a)
    assert run_a[0]["created_at"] == T0 + timedelta(minutes=5)
    assert {doc["label"] for doc in results.find_predictions(PredictionFilter(label="healthy"))} == {"healthy"}
    banded = results.find_predictions(PredictionFilter(min_score=0.3, max_score=0.6))
    assert [doc["score"] for doc in banded] == [0.6, 0.5, 0.4, 0.3]
    assert [doc["score"] for doc in results.find_predictions(PredictionFilter(run_id="run-b", label="pathological", min_score=0.8))] == [0.9]
    assert len(results.find_predictions(limit=3)) == 3


def test_predictions_filter_by_model_version_on_its_own_index(results: ResultStore, mongo_db: Database) -> None:
    # A file re-scored after a promotion has one prediction per model: a listing had no way to keep one model's.
    results.insert_predictions([prediction(i, model_version=version, minutes=i) for i in range(4) for version in ("m1", "m2")])
    where = PredictionFilter(label="pathological", model_version="m2")
    assert [(doc["model_version"], doc["score"]) for doc in results.find_predictions(where)] == [("m2", 0.3), ("m2", 0.1)]
    assert [doc["audio_sha256"][-1] for doc in results.iter_predictions(PredictionFilter(model_version="m1"))] == ["0", "1", "2", "3"]
    assert results.scored_by("m2") and not results.scored_by("m3")
    assert [("model_version", 1)] in [list(index["key"].items()) for index in mongo_db["predictions"].list_indexes()]


def test_predictions_filter_by_subject_on_its_own_index(results: ResultStore, mongo_db: Database) -> None:
    # A participant's visits: their recordings, newest first, whichever run scored them.
    results.insert_predictions([{**prediction(i, run_id=f"visit-{i}", minutes=i), "subject_id": f"S{i % 3}"} for i in range(7)])
    visits = results.find_predictions(PredictionFilter(subject_id="S1"))
    assert [(doc["run_id"], doc["subject_id"]) for doc in visits] == [("visit-4", "S1"), ("visit-1", "S1")]
    assert [doc["run_id"] for doc in results.find_predictions(PredictionFilter(subject_id="S0", label="healthy"))] == ["visit-6", "visit-0"]
    assert results.find_predictions(PredictionFilter(subject_id="S9")) == []
    assert [("subject_id", 1)] in [list(index["key"].items()) for index in mongo_db["predictions"].list_indexes()]


def test_scored_since_is_one_models_predictions_from_a_time_on(results: ResultStore) -> None:
    results.insert_predictions([prediction(i, model_version=version, minutes=i * 10) for i in range(6) for version in ("m1", "m2")])
    assert sorted(results.scored_since("m1", T0 + timedelta(minutes=30))) == [f"{i:064x}" for i in (3, 4, 5)]  # from 30 minutes on, inclusive
    assert sorted(results.scored_since("m2", T0)) == [f"{i:064x}" for i in range(6)]
    assert results.scored_since("m1", T0 + timedelta(hours=2)) == [] and results.scored_since("m3", T0) == []


@pytest.mark.parametrize("lookup_cost", [0.0, None, 1e9])  # always looked up; the rollup decides; always streamed
def test_scores_of_are_one_models_predictions_of_the_contents_asked_past_one_batch(
    results: ResultStore, lookup_cost: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if lookup_cost is not None:
        monkeypatch.setattr(store.mongo, "_LOOKUP_COST", lookup_cost)
    results.insert_predictions([prediction(i, model_version=version, minutes=i) for i in range(1500) for version in ("m1", "m2")])
    asked = [f"{i:064x}" for i in range(0, 3000, 2)]  # 1,500 hashes (two lookups), half of them never scored
    found = results.scores_of("m1", asked)
    assert sorted(doc["audio_sha256"] for doc in found) == [f"{i:064x}" for i in range(0, 1500, 2)]
    assert found[0].keys() == {"audio_sha256", "score", "label", "created_at"}
    assert [(doc["score"], doc["label"]) for doc in results.scores_of("m2", [f"{3:064x}"])] == [(0.3, "pathological")]
    recent = results.scores_of("m1", asked, since=T0 + timedelta(minutes=1400))  # inclusive
    assert sorted(doc["audio_sha256"] for doc in recent) == [f"{i:064x}" for i in range(1400, 1500, 2)]
    assert results.scores_of("m3", asked) == [] and results.scores_of("m1", []) == []


def test_iter_predictions_streams_every_match_past_one_batch(results: ResultStore) -> None:
    results.insert_predictions([prediction(i, run_id="run-a" if i < 2400 else "run-b", minutes=i) for i in range(2500)])
    run_a = list(results.iter_predictions(PredictionFilter(run_id="run-a")))
    assert len(run_a) == 2400 and len({doc["audio_sha256"] for doc in run_a}) == 2400  # three round trips of 1,000
    assert all("_id" not in doc for doc in run_a)
    assert [doc["score"] for doc in results.iter_predictions(PredictionFilter(run_id="run-b", min_score=249.0, max_score=249.5))] == [249.0, 249.1, 249.2, 249.3, 249.4, 249.5]
    assert {doc["label"] for doc in results.iter_predictions(PredictionFilter(label="healthy"), limit=1200)} == {"healthy"}
    assert len(list(results.iter_predictions(limit=1200))) == 1200


def test_quarantine_and_runs(results: ResultStore) -> None:
    results.insert_quarantine(
        [
            {"run_id": "run-a", "audio_sha256": "a" * 64, "path": "x.wav", "stage": "decode", "reason": "not audio", "created_at": T0},
            {"run_id": "run-b", "audio_sha256": "b" * 64, "path": "y.wav", "stage": "quality", "reason": "silence", "created_at": T0},
        ]
    )
    assert [doc["reason"] for doc in results.find_quarantine(run_id="run-a")] == ["not audio"]
    assert len(results.find_quarantine()) == 2
    assert [doc["reason"] for doc in results.iter_quarantine(run_id="run-b")] == ["silence"]
    assert len(list(results.iter_quarantine())) == 2 and len(list(results.iter_quarantine(limit=1))) == 1

    results.start_run({"run_id": "run-a", "status": "running", "started_at": T0})
    results.start_run({"run_id": "run-a", "status": "running", "started_at": T0})
    results.start_run({"run_id": "run-b", "status": "running", "started_at": T0 + timedelta(hours=1)})
    results.finish_run("run-a", {"status": "completed", "counts": {"seen": 10, "scored": 9}})
    runs = results.find_runs()
    assert [run["run_id"] for run in runs] == ["run-b", "run-a"]
    assert runs[1]["status"] == "completed" and runs[1]["counts"] == {"seen": 10, "scored": 9}


def test_run_ids_by_the_start_of_the_id_whole_id_first(results: ResultStore) -> None:
    for run_id in ("6bf4d0bc-2", "6bf4d0bc-1", "6bf4d0bc", "6bf4.x", "7aa"):
        results.start_run({"run_id": run_id, "status": "completed", "started_at": T0})
    assert results.run_ids("6bf4d0bc", limit=5) == ["6bf4d0bc", "6bf4d0bc-1", "6bf4d0bc-2"]
    assert results.run_ids("6bf4", limit=2) == ["6bf4.x", "6bf4d0bc"]
    assert results.run_ids("6bf4.", limit=5) == ["6bf4.x"]  # the prefix is text, not a pattern
    assert results.run_ids("0000", limit=5) == []


def test_backoff_delays_double_up_to_a_cap_within_budget() -> None:
    delays = backoff_delays(30)
    assert delays[:5] == [0.2, 0.4, 0.8, 1.6, 3.2]
    assert max(delays) == 5.0
    assert sum(delays) <= 30
    assert backoff_delays(0) == []


def test_unreachable_mongo_raises_service_error() -> None:
    client = connect_mongo("mongodb://127.0.0.1:9/", timeout_ms=200)
    store = ResultStore(client["voxflow"], retry_s=1)
    began = time.monotonic()
    with pytest.raises(ServiceError, match="MongoDB unreachable after"):
        store.insert_predictions([prediction(1)])
    assert time.monotonic() - began < 5
    with pytest.raises(ServiceError, match=r"MongoDB unreachable \(read predictions\)"):
        list(store.iter_predictions())
    client.close()


@pytest.mark.skipif("VOXFLOW_TEST_MONGO_URI" in os.environ, reason="restarts the embedded nx-27017 only")
def test_insert_waits_for_a_restarted_mongo(results: ResultStore, mongo_db: Database, test_settings: Settings) -> None:
    results.insert_predictions([prediction(i) for i in range(100)])
    assert services.stop_service(test_settings, "mongo")

    def restart_later() -> None:
        time.sleep(2)
        services.mongo_uri(test_settings)

    restarter = threading.Thread(target=restart_later)
    restarter.start()
    began = time.monotonic()
    try:
        assert results.insert_predictions([prediction(i) for i in range(50, 300)]) == 200
    finally:
        restarter.join()
    assert time.monotonic() - began >= 1.5
    assert mongo_db["predictions"].count_documents({}) == 300
    assert results.stored_listings([prediction(i)["audio_sha256"] for i in range(300)], "m1").keys() == {
        prediction(i)["audio_sha256"] for i in range(300)
    }


def refused_user() -> None:
    # What pymongo raises when the server rejects the URI's user (no MongoDB with users is at hand here).
    raise OperationFailure("Authentication failed.", code=18, details={"ok": 0.0, "errmsg": "Authentication failed.", "code": 18})


def test_a_refused_user_fails_at_once_without_retrying() -> None:
    attempts = []

    def operation() -> None:
        attempts.append(time.monotonic())
        refused_user()

    with pytest.raises(ServiceError, match=r"MongoDB refused the configured user \(insert 1 into runs\): Authentication failed\."):
        _retrying("insert 1 into runs", operation, budget_s=30)
    assert len(attempts) == 1


def test_an_unreachable_server_in_an_open_database_is_a_service_error() -> None:
    with pytest.raises(ServiceError, match=r"^MongoDB unreachable \(database voxflow\): 127\.0\.0\.1:9: .*refused"):
        with open_database("mongodb://127.0.0.1:9/", "voxflow") as db:
            db["models"].find_one({})


def test_a_refused_user_in_an_open_database_is_a_service_error(test_settings: Settings) -> None:
    with pytest.raises(ServiceError, match=r"MongoDB refused the configured user \(database voxflow\)"):
        with open_database(services.mongo_uri(test_settings), "voxflow"):
            refused_user()
    # Any other refusal that leaves the block is one line too, what the server said (a full disk, a document too large).
    with pytest.raises(DatabaseError, match=r"^MongoDB refused an operation \(database voxflow\): E11000 duplicate key$") as refused:
        with open_database(services.mongo_uri(test_settings), "voxflow"):
            raise DuplicateKeyError("E11000 duplicate key", code=11000)
    assert isinstance(refused.value.__cause__, DuplicateKeyError)


@pytest.mark.skipif("VOXFLOW_TEST_MONGO_URI" in os.environ, reason="the embedded nx-27017 has no auth")
def test_a_user_for_a_server_without_auth_is_one_line_naming_the_server(test_settings: Settings) -> None:
    # pymongo's SCRAM login read nx-27017's answer, which has no 'payload', as a KeyError: a traceback from any command.
    uri = services.mongo_uri(test_settings)
    with_user = uri.replace("mongodb://", "mongodb://voxflow:s3cretPW@")
    refused = rf"^MongoDB at {re.escape(uri.removeprefix('mongodb://').rstrip('/'))} refused authentication \(the server may not support auth\): "
    with pytest.raises(DatabaseError, match=refused + r"its answer to the login lacks 'payload' \(database voxflow\); remove the user") as raised:
        with open_database(with_user, "voxflow") as db:
            db["models"].find_one({})
    assert "s3cretPW" not in raised.value.reason
    with connect_mongo(with_user, timeout_ms=1000) as client, pytest.raises(DatabaseError, match=refused + r".*\(read predictions\)"):
        ResultStore(client["voxflow"], retry_s=0).find_predictions()
    with pytest.raises(KeyError), open_database(uri, "voxflow"):  # a KeyError of the block's own is not a login's
        {}["payload"]


def test_a_write_the_server_refuses_is_one_line_and_not_retried(results: ResultStore, mongo_db: Database) -> None:
    attempts = []

    def full_disk() -> None:
        attempts.append(1)
        raise OperationFailure("database or disk is full", code=1, details={"ok": 0.0, "errmsg": "database or disk is full"})

    with pytest.raises(DatabaseError, match=r"^MongoDB refused an operation \(finish run r1\): database or disk is full$"):
        _retrying("finish run r1", full_disk, budget_s=30)
    assert attempts == [1]


def test_a_uri_pymongo_cannot_use_as_it_opens_the_client_is_one_error_without_its_secret() -> None:
    # A mongodb+srv:// name without DNS records raised pymongo's ConfigurationError: a 55-line traceback from any command.
    with pytest.raises(DatabaseError, match=r"^MongoDB URI not usable: ") as refused:
        connect_mongo("mongodb+srv://voxflow:s3cretPW@nonexistent.invalid/")
    assert "s3cretPW" not in refused.value.reason


def test_forget_deletes_a_recordings_results_by_content_path_or_subject_and_counts_them_out(results: ResultStore, mongo_db: Database) -> None:
    listed = [("/c/0.wav", "s1"), ("/c/1.wav", "s1"), ("/c/2.wav", None), ("/c/3.wav", "s2"), ("/c/4.wav", None)]
    docs = [{**prediction(i, minutes=20 * (i % 2)), "path": path, "subject_id": subject, "threshold": 0.25} for i, (path, subject) in enumerate(listed)]
    results.insert_predictions(docs + [{**docs[4], "model_version": "m2"}])
    quarantined = [
        {"run_id": "run-a", "path": "/c/gone.wav", "stage": "discover", "reason": "not found", "created_at": T0},  # no content
        {"run_id": "run-a", "path": "/c/5.wav", "audio_sha256": f"{5:064x}", "subject_id": "s1", "stage": "decode", "reason": "empty", "created_at": T0},
        {"run_id": "run-b", "path": "/c/copy-of-4.wav", "audio_sha256": f"{4:064x}", "stage": "duplicate", "reason": "same as /c/4.wav", "created_at": T0},
    ]
    results.insert_quarantine(quarantined)
    assert results.listed_under(subjects={"s1"}, paths={"/c/gone.wav"}) == {
        (f"{0:064x}", "/c/0.wav", "s1"), (f"{1:064x}", "/c/1.wav", "s1"), (f"{5:064x}", "/c/5.wav", "s1"), (None, "/c/gone.wav", None),
    }

    named = {"hashes": {f"{4:064x}", f"{9:064x}"}, "paths": {"/c/gone.wav", "/c/2.wav"}, "subjects": {"s1"}}
    dry = results.forget(**named, dry_run=True)
    assert mongo_db["predictions"].count_documents({}) == 6 and mongo_db["quarantine"].count_documents({}) == 3
    forgotten = results.forget(**named)
    assert forgotten == dry
    assert (forgotten.predictions, forgotten.quarantine, forgotten.model_versions) == (5, 3, ("m1", "m2"))
    assert forgotten.hashes == {f"{i:064x}" for i in (0, 1, 2, 4, 5)}
    assert [doc["path"] for doc in mongo_db["predictions"].find()] == ["/c/3.wav"]
    assert mongo_db["quarantine"].count_documents({}) == 0

    counted = {name: sorted((doc["_id"], {k: v for k, v in doc.items() if k != "_id" and v}) for doc in mongo_db[name].find()) for name in (COUNTS, SCORES)}
    rebuild_counts(mongo_db)
    assert counted == {name: sorted((doc["_id"], {k: v for k, v in doc.items() if k != "_id" and v}) for doc in mongo_db[name].find()) for name in (COUNTS, SCORES)}
    assert rollup(mongo_db) == {T0 + timedelta(minutes=15): (1, 1, 0)}  # what is left: /c/3.wav, positive; no emptied quarter hour
