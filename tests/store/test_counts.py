"""The prediction_counts rollup against a real MongoDB wire-protocol server: kept on insert (also by a real queue drain and across a retried insert), rebuilt from the results."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import soundfile as sf
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError

from features.synth import synth_vowel
from store.counts import COUNTS, DUPLICATE_STAGE, SCORES, SCORES_INDEX, bucket_start, counts_missing, model_scores, rebuild_counts
from store.mongo import ResultStore
from tests.store.conftest import rollup
from tests.voxflow_cli import env_db, last_json, run_cli

T0 = datetime(2026, 11, 27, 9, 14, 59, 999_000, tzinfo=timezone.utc)  # the last millisecond of a quarter hour


def prediction(i: int, created_at: datetime, *, score: float = 0.2, threshold: float | None = 0.5) -> dict:
    return {"audio_sha256": f"{i:064x}", "model_version": "m1", "run_id": "run-a", "score": score, "threshold": threshold, "created_at": created_at}


def rejected(i: int, created_at: datetime) -> dict:
    return {"run_id": "run-a", "path": f"/bad/{i}.wav", "stage": "decode", "reason": "empty file", "created_at": created_at}


def score_rollup(db: Database) -> dict[str, dict]:
    return {doc["_id"]: {k: v for k, v in doc.items() if k != "_id" and v} for doc in db[SCORES].find()}


def test_buckets_are_utc_quarter_hours() -> None:
    assert bucket_start(T0) == datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
    assert bucket_start(T0 + timedelta(milliseconds=1)) == datetime(2026, 11, 27, 9, 15, tzinfo=timezone.utc)
    india = timezone(timedelta(hours=5, minutes=30))
    assert bucket_start(datetime(2026, 11, 27, 14, 50, tzinfo=india)) == datetime(2026, 11, 27, 9, 15, tzinfo=timezone.utc)
    assert bucket_start(datetime(2026, 11, 27, 9, 50)) == datetime(2026, 11, 27, 9, 45, tzinfo=timezone.utc)  # naive = UTC


def test_only_inserted_documents_are_counted(results: ResultStore, mongo_db: Database) -> None:
    first = [prediction(i, T0, score=i / 10) for i in range(10)]  # scores 0.5 .. 0.9 are positive
    assert results.insert_predictions(first) == 10
    quarter = bucket_start(T0)
    assert rollup(mongo_db) == {quarter: (10, 5, 0)}
    # A rerun: the same chunk again adds nothing; an overlapping one adds only its new documents.
    assert results.insert_predictions(first) == 0
    later = T0 + timedelta(minutes=1)
    overlap = [prediction(i, later, score=0.7) for i in range(8, 13)]  # 8 and 9 are stored already
    assert results.insert_predictions(overlap) == 3
    assert rollup(mongo_db) == {quarter: (10, 5, 0), bucket_start(later): (3, 3, 0)}
    assert results.insert_quarantine([rejected(i, later) for i in range(4)]) == 4
    assert rollup(mongo_db)[bucket_start(later)] == (3, 3, 4)
    assert mongo_db["predictions"].count_documents({}) == 13 and mongo_db["quarantine"].count_documents({}) == 4


def lose_the_reply_of_the_next_insert(monkeypatch: pytest.MonkeyPatch, *, applied: int) -> None:
    """The next ``insert_many`` reaches the server, which stores its first ``applied`` documents, but the
    connection drops before the reply: pymongo raises AutoReconnect, which the store retries."""
    real = Collection.insert_many

    def insert_many(self: Collection, documents: list[dict], **kwargs: object) -> NoReturn:
        monkeypatch.setattr(Collection, "insert_many", real)  # the retry's reply arrives
        try:
            real(self, documents[:applied], **kwargs)
        except BulkWriteError:
            pass  # its duplicates, in a reply that never came
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(Collection, "insert_many", insert_many)


@pytest.mark.parametrize("applied", [4, 2])
def test_a_retried_insert_counts_what_its_lost_attempt_stored_once(
    results: ResultStore, mongo_db: Database, monkeypatch: pytest.MonkeyPatch, applied: int
) -> None:
    assert results.insert_predictions([prediction(0, T0, score=0.9)]) == 1
    later = T0 + timedelta(minutes=1)  # the next quarter hour
    lose_the_reply_of_the_next_insert(monkeypatch, applied=applied)
    # 0 is a duplicate of the prediction stored above: skipped, not counted, on every attempt.
    assert results.insert_predictions([prediction(i, later, score=0.1 if i == 2 else 0.9) for i in range(4)]) == 3
    assert rollup(mongo_db) == {bucket_start(T0): (1, 1, 0), bucket_start(later): (3, 2, 0)}
    assert model_scores(mongo_db, T0, "m1") == ([0, 1] + [0] * 7 + [3], 3)
    lose_the_reply_of_the_next_insert(monkeypatch, applied=applied)
    assert results.insert_quarantine([rejected(i, later) for i in range(4)]) == 4
    assert rollup(mongo_db)[bucket_start(later)] == (3, 2, 4)
    assert mongo_db["predictions"].count_documents({}) == 4 and mongo_db["quarantine"].count_documents({}) == 4


def test_the_records_of_duplicates_are_not_counted_as_quarantined(results: ResultStore, mongo_db: Database) -> None:
    duplicate = {**rejected(1, T0), "stage": DUPLICATE_STAGE, "reason": "same content as /bad/0.wav: analysed once, under that name"}
    assert results.insert_quarantine([rejected(0, T0), duplicate]) == 2
    assert rollup(mongo_db) == {bucket_start(T0): (0, 0, 1)}
    rebuild_counts(mongo_db)
    assert rollup(mongo_db) == {bucket_start(T0): (0, 0, 1)}
    assert results.stored_counts("run-a") == {"scored": 0, "quarantined": 1, "duplicates": 1}


def test_a_prediction_without_threshold_is_not_positive(results: ResultStore, mongo_db: Database) -> None:
    results.insert_predictions([prediction(1, T0, score=0.9, threshold=None), prediction(2, T0, score=0.9)])
    assert rollup(mongo_db) == {bucket_start(T0): (2, 1, 0)}
    rebuild_counts(mongo_db)
    assert rollup(mongo_db) == {bucket_start(T0): (2, 1, 0)}


def test_rebuild_matches_what_inserts_kept(results: ResultStore, mongo_db: Database) -> None:
    times = [T0 - timedelta(days=2), T0 - timedelta(hours=5, minutes=31), T0, T0 + timedelta(seconds=1), T0 + timedelta(minutes=50)]
    for chunk, when in enumerate(times):
        results.insert_predictions([prediction(100 * chunk + i, when, score=(i % 4) / 4) for i in range(5 + chunk)])
        results.insert_quarantine([rejected(100 * chunk + i, when) for i in range(chunk)])
    mongo_db["quarantine"].insert_one({"run_id": "old", "stage": "decode", "reason": "no time"})  # no created_at: in no bucket
    results.insert_predictions([dict(prediction(900 + i, T0, score=1.0), model_version="m2") for i in range(3)])
    kept, kept_scores = rollup(mongo_db), score_rollup(mongo_db)
    assert len(kept) == 5 and sum(p for p, _, _ in kept.values()) == 5 + 6 + 7 + 8 + 9 + 3
    assert len(kept_scores) == 6  # five quarter hours of m1, one of m2
    assert rebuild_counts(mongo_db) == 5
    assert rollup(mongo_db) == kept and score_rollup(mongo_db) == kept_scores


def test_score_bins_per_model_and_window(results: ResultStore, mongo_db: Database) -> None:
    results.insert_predictions([prediction(i, T0, score=s) for i, s in enumerate([0.0, 0.05, 0.1, 0.49, 0.5, 0.99, 1.0])])
    results.insert_predictions([prediction(50, T0 - timedelta(hours=1), score=0.7)])
    results.insert_predictions([dict(prediction(60, T0, score=0.3), model_version="m2")])
    assert model_scores(mongo_db, T0 - timedelta(minutes=5), "m1") == ([2, 1, 0, 0, 1, 1, 0, 0, 0, 2], 3)
    assert model_scores(mongo_db, T0 - timedelta(hours=1), "m1") == ([2, 1, 0, 0, 1, 1, 0, 1, 0, 2], 4)
    assert model_scores(mongo_db, T0 - timedelta(minutes=5), "m2") == ([0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 0)
    assert model_scores(mongo_db, T0 + timedelta(minutes=1), "m1") == ([0] * 10, 0)  # the quarter hour after T0's


def test_ensure_counts_rebuilds_a_database_from_before_the_rollup(results: ResultStore, mongo_db: Database) -> None:
    assert not counts_missing(mongo_db) and results.ensure_counts() is False  # empty: nothing to count
    mongo_db["predictions"].insert_many([prediction(i, T0, score=0.6) for i in range(7)])  # written without the rollup
    mongo_db["quarantine"].insert_many([rejected(i, T0) for i in range(2)])
    assert counts_missing(mongo_db)
    assert results.ensure_counts() is True
    assert rollup(mongo_db) == {bucket_start(T0): (7, 7, 2)}
    assert model_scores(mongo_db, T0, "m1") == ([0] * 6 + [7] + [0] * 3, 7)
    assert results.ensure_counts() is False  # present now: left alone, kept by inserts from here on
    results.insert_predictions([prediction(50, T0)])
    assert rollup(mongo_db) == {bucket_start(T0): (8, 7, 2)}


def _direct(db: Database) -> tuple[int, int, int]:
    """(predictions, positives, quarantined) counted over the collections themselves (a duplicate's record is no quarantined file)."""
    scores = list(db["predictions"].find({}, {"_id": 0, "score": 1, "threshold": 1}))
    quarantined = db["quarantine"].count_documents({"stage": {"$ne": DUPLICATE_STAGE}})
    return len(scores), sum(1 for p in scores if p["score"] >= p["threshold"]), quarantined


@pytest.mark.slow
def test_a_queue_drain_and_its_repeat_keep_the_counts_equal_to_the_collections(cli_env: dict[str, str], tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):
        sf.write(clips / f"clip{i}.wav", synth_vowel(f0_hz=100 + 40 * i, duration_s=1.5, sr=16_000, seed=i), 16_000)
    shutil.copy(clips / "clip0.wav", tmp_path / "copy.wav")  # same content: scored once, its record not counted
    sf.write(tmp_path / "silence.wav", np.zeros(16_000, dtype=np.float32), 16_000)  # quarantined at the quality gate
    sources = [str(clips), str(tmp_path / "copy.wav"), str(tmp_path / "silence.wav")]
    db = env_db(cli_env)

    last_json(run_cli(["enqueue", *sources, "--json"], cli_env))
    first = last_json(run_cli(["drain", "--json"], cli_env))
    assert (first["scored"], first["quarantined"]) == (4, 1), first
    counted = tuple(sum(b.get(name, 0) for b in db[COUNTS].find()) for name in ("predictions", "positives", "quarantined"))
    assert counted == _direct(db) and counted[0] == 4
    assert db["quarantine"].count_documents({"stage": DUPLICATE_STAGE}) == 1  # copy.wav, named

    last_json(run_cli(["enqueue", *sources, "--json"], cli_env))  # the same files again: already stored, re-quarantined
    again = last_json(run_cli(["drain", "--json"], cli_env))
    assert (again["scored"], again["quarantined"]) == (0, 1), again
    recounted = tuple(sum(b.get(name, 0) for b in db[COUNTS].find()) for name in ("predictions", "positives", "quarantined"))
    assert recounted == _direct(db) == (counted[0], counted[1], counted[2] + 1)


def test_a_database_with_only_the_older_rollup_gets_the_score_rollup(results: ResultStore, mongo_db: Database) -> None:
    results.insert_predictions([prediction(i, T0, score=0.6) for i in range(3)])
    mongo_db[SCORES].drop()  # as left by the version that kept prediction_counts only
    assert counts_missing(mongo_db) and results.ensure_counts() is True
    assert model_scores(mongo_db, T0, "m1") == ([0] * 6 + [3] + [0] * 3, 3)


def test_rebuild_keeps_the_score_counts_index(results: ResultStore, mongo_db: Database) -> None:
    # Dropping score_counts dropped its index: a database rebuilt on open (or restored) had lost it until the next ensure_indexes.
    results.ensure_indexes()
    results.insert_predictions([prediction(1, T0, score=0.9)])
    rebuild_counts(mongo_db)
    keys = [list(index["key"].items()) for index in mongo_db[SCORES].list_indexes()]
    assert SCORES_INDEX in keys
