"""The dashboard's queries against the real MongoDB wire server and Redis, on hand-made documents."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
import redis
from pymongo.database import Database

from dashboard import queries
from store.mongo import ResultStore

NOW = datetime(2026, 11, 27, 12, 0, 30, tzinfo=timezone.utc)


def _prediction(i: int, created_at: datetime, *, score: float, label: str, decode: float, features: float, run_id: str = "r1") -> dict:
    return {
        "audio_sha256": f"h{i:06d}", "model_version": "m1", "run_id": run_id, "score": score, "label": label,
        "timings_ms": {"decode": decode, "features": features}, "created_at": created_at,
    }


@pytest.fixture
def seeded(mongo_db: Database) -> Database:
    """Seeded: 30 predictions in the last hour, 5 from three days ago (outside a 24 h window)."""
    docs = [
        _prediction(i, NOW - timedelta(minutes=i % 3), score=i / 30, label="pathological" if i % 3 == 0 else "healthy",
                    decode=0.4 + i, features=50.3 + 2 * i)
        for i in range(30)
    ]
    docs += [_prediction(100 + i, NOW - timedelta(days=3), score=0.99, label="pathological", decode=1, features=900) for i in range(5)]
    mongo_db["predictions"].insert_many(docs)
    mongo_db["predictions"].create_index([("created_at", -1)])
    mongo_db["runs"].insert_many([
        {"run_id": "r1", "started_at": NOW - timedelta(hours=1), "scored": 30, "quarantined": 10, "duplicates": 2, "source": "a", "status": "completed"},
        {"run_id": "r0", "started_at": NOW - timedelta(days=3), "scored": 5, "quarantined": 50, "source": "b", "status": "completed"},
    ])
    mongo_db["quarantine"].insert_many(
        [{"run_id": "r1", "stage": "quality", "reason": "silence"} for _ in range(6)]
        + [{"run_id": "r1", "stage": "decode", "reason": "empty file"} for _ in range(3)]
        + [{"run_id": "r1", "stage": "timeout", "reason": "took longer than 60 s"}]
        + [{"run_id": "r0", "stage": "worker", "reason": "worker died"} for _ in range(50)]
        + [{"run_id": "r1", "stage": "duplicate", "reason": f"same content as /in/{i}.wav: analysed once, under that name"} for i in range(2)]
    )
    return mongo_db


def test_windows_exclude_old_documents(seeded: Database) -> None:
    since = NOW - timedelta(hours=24)
    recent = queries.recent_predictions(seeded, since)
    assert len(recent) == 30
    newest = queries.recent_predictions(seeded, since, limit=12)  # newest first: the minute's 10, then 2 of the one before
    assert newest["created_at"].tolist() == [NOW] * 10 + [NOW - timedelta(minutes=1)] * 2
    totals = queries.run_totals(seeded, since)
    assert (totals.runs, totals.scored, totals.quarantined, totals.errors) == (1, 30, 10, 1)
    assert totals.quarantine_rate == pytest.approx(10 / 40) and totals.error_rate == pytest.approx(1 / 40)
    assert queries.run_totals(seeded, NOW + timedelta(hours=1)) == queries.RunTotals(0, 0, 0, 0)
    assert queries.run_totals(seeded, NOW + timedelta(hours=1)).error_rate is None


def test_rates_count_only_finished_runs(seeded: Database) -> None:
    # A run still going has no counts yet: its quarantine records must not count as errors meanwhile.
    seeded["runs"].insert_one({"run_id": "r2", "started_at": NOW - timedelta(minutes=5), "source": "c", "status": "running"})
    seeded["quarantine"].insert_many([{"run_id": "r2", "stage": "worker", "reason": "worker died"} for _ in range(5)])
    totals = queries.run_totals(seeded, NOW - timedelta(hours=24))
    assert (totals.runs, totals.scored, totals.quarantined, totals.errors) == (2, 30, 10, 1)
    assert totals.error_rate == pytest.approx(1 / 40)


def test_processing_percentiles_match_numpy_on_the_raw_values(seeded: Database) -> None:
    recent = queries.recent_predictions(seeded, NOW - timedelta(days=4))
    assert len(recent) == 35  # the window reaches the old ones too; the percentiles below do not
    raw = [0.4 + i + 50.3 + 2 * i for i in range(30)]
    p50, p95 = queries.processing_percentiles(recent, NOW - timedelta(hours=24))
    assert (p50, p95) == (np.percentile(raw, 50, method="higher"), np.percentile(raw, 95, method="higher"))
    assert queries.processing_percentiles(recent, NOW + timedelta(hours=1)) == [None, None]


def test_counts_per_day_follow_the_time_zone(mongo_db: Database) -> None:
    results = ResultStore(mongo_db)  # written as the product writes them: the rollup is kept on insert
    results.ensure_indexes()
    # 18:35 UTC on the 26th is 00:05 on the 27th in India (UTC+5:30), where whole-hour buckets would say the 26th;
    # 23:30 UTC is the 27th in Tokyo (UTC+9) and India, still the 26th in New York.
    early, late = datetime(2026, 11, 26, 18, 35, tzinfo=timezone.utc), datetime(2026, 11, 26, 23, 30, tzinfo=timezone.utc)
    results.insert_predictions([dict(_prediction(i, early, score=0.9, label="pathological", decode=1, features=1), threshold=0.5) for i in range(2)])
    results.insert_predictions([dict(_prediction(10 + i, late, score=s, label="x", decode=1, features=1), threshold=0.5) for i, s in enumerate([0.2, 0.5, 0.7, 0.1])])
    results.insert_quarantine([{"run_id": "r1", "stage": "decode", "reason": "empty file", "created_at": late}])
    since = late - timedelta(days=2)

    def shown(tz: str, start: datetime = since) -> list[list]:
        days = queries.counts_per_day(mongo_db, start, tz)
        return days.assign(day=days["day"].dt.strftime("%Y-%m-%d")).values.tolist()

    quarters = queries.counts_per_quarter_hour(mongo_db, since)
    assert quarters.values.tolist() == [[datetime(2026, 11, 26, 18, 30, tzinfo=timezone.utc), 2, 2, 0], [late, 4, 2, 1]]
    assert queries.counts_per_quarter_hour(mongo_db, late + timedelta(minutes=14)).values.tolist() == [[late, 4, 2, 1]]
    assert shown("Asia/Kolkata") == shown("Asia/Tokyo") == [["2026-11-27", 6, 4, 1]]
    assert shown("America/New_York") == shown("UTC") == [["2026-11-26", 6, 4, 1]]
    assert shown("UTC", early + timedelta(minutes=30)) == [["2026-11-26", 4, 2, 1]]
    assert shown("UTC", late + timedelta(hours=1)) == []


@pytest.mark.parametrize(("tz", "day", "begins"), [
    ("America/Santiago", date(2026, 9, 6), datetime(2026, 9, 6, 4, tzinfo=timezone.utc)),  # 00:00 -04 skipped to 01:00 -03
    ("Asia/Beirut", date(2026, 3, 29), datetime(2026, 3, 28, 22, tzinfo=timezone.utc)),  # 00:00 +02 skipped to 01:00 +03
    ("Asia/Tokyo", date(2026, 9, 6), datetime(2026, 9, 5, 15, tzinfo=timezone.utc)),  # no DST: midnight
])
def test_days_begin_at_local_midnight_or_where_dst_skips_it(tz: str, day: date, begins: datetime) -> None:
    noon = begins + timedelta(hours=12)
    assert queries.local_today(tz, now=noon) == day
    assert queries.day_start(day, tz) == begins
    # Thirteen days later the Overview's first shown day is the DST day.
    assert queries.day_start(queries.local_today(tz, now=noon + timedelta(days=13)) - timedelta(days=13), tz) == begins


def test_score_distribution_follows_each_predictions_threshold(mongo_db: Database) -> None:
    results = ResultStore(mongo_db)  # written as the product writes them: the score rollup is kept on insert
    results.ensure_indexes()
    # Scores i/30: three per bin. Threshold 0.5 (itself a score, so positive), then a chunk by a model with 0.41.
    results.insert_predictions([dict(_prediction(i, NOW - timedelta(minutes=i % 3), score=i / 30, label="x", decode=1, features=1), threshold=0.5)
                                for i in range(30)])
    results.insert_predictions([dict(_prediction(100 + i, NOW, score=i / 30, label="x", decode=1, features=1), model_version="m2", threshold=0.41)
                                for i in range(30)])
    results.insert_predictions([dict(_prediction(200 + i, NOW, score=0.9, label="x", decode=1, features=1), model_version="m3") for i in range(4)])
    results.insert_predictions([dict(_prediction(300 + i, NOW - timedelta(days=3), score=0.99, label="x", decode=1, features=1), threshold=0.5)
                                for i in range(5)])
    since = NOW - timedelta(days=2)
    m1 = queries.score_distribution(mongo_db, since, model_version="m1")
    assert m1.histogram["clips"].tolist() == [3] * 10 and m1.histogram["share"].sum() == pytest.approx(1.0)
    assert (m1.positive, m1.total) == (15, 30)
    m2 = queries.score_distribution(mongo_db, since, model_version="m2")
    assert m2.histogram["clips"].tolist() == [3] * 10 and m2.positive == 17  # 13/30 = 0.433 is the first at or above 0.41
    m3 = queries.score_distribution(mongo_db, since, model_version="m3")  # no threshold recorded: never positive
    assert (m3.positive, m3.total, m3.histogram["clips"].tolist()) == (0, 4, [0] * 9 + [4])
    assert queries.score_distribution(mongo_db, NOW - timedelta(days=4), model_version="m1").total == 35
    other = queries.score_distribution(mongo_db, since, model_version="other")
    assert (other.positive, other.total, other.histogram["clips"].sum()) == (0, 0, 0)


def test_reasons_and_runs(seeded: Database) -> None:
    reasons = queries.quarantine_reasons(seeded, "r1")  # the bad files, not the records of duplicates
    assert reasons.values.tolist() == [["quality", "silence", 6], ["decode", "empty file", 3], ["timeout", "took longer than 60 s", 1]]
    assert queries.quarantine_reasons(seeded, "nope").empty
    runs = queries.recent_runs(seeded)
    assert runs["run_id"].tolist() == ["r1", "r0"] and runs["duplicates"].tolist()[0] == 2


def test_absent_collections_read_as_empty(mongo_db: Database) -> None:
    since = NOW - timedelta(days=1)
    assert queries.scaling_events(mongo_db, since).empty and queries.model_documents(mongo_db).empty
    mongo_db["scaling_events"].insert_one({"time": NOW, "workers_before": 0, "workers_after": 2, "backlog": 7, "reason": "cluster start",
                                           "recommendation": {"action": "hold", "reason": "no trigger firing", "triggers": {}}})
    assert queries.scaling_events(mongo_db, since)[["workers_after", "recommendation"]].values.tolist() == [[2, "hold"]]
    assert queries.last_backup(mongo_db) is None and queries.champion_document(mongo_db) is None
    assert queries.recent_runs(mongo_db).empty and queries.recent_predictions(mongo_db, since).empty
    assert queries.counts_per_quarter_hour(mongo_db, since).empty and queries.counts_per_day(mongo_db, since, "UTC").empty
    assert queries.score_distribution(mongo_db, since, model_version="m1").total == 0


def test_a_score_of_one_is_in_the_top_bin(mongo_db: Database) -> None:
    ResultStore(mongo_db).insert_predictions([dict(_prediction(i, NOW, score=s, label="x", decode=1, features=1), threshold=0.9)
                                              for i, s in enumerate([1.0, 0.0, 0.95])])
    shown = queries.score_distribution(mongo_db, NOW - timedelta(hours=1), model_version="m1")
    assert shown.histogram["clips"].tolist() == [1] + [0] * 8 + [2] and (shown.positive, shown.total) == (2, 3)


def test_models_champion_first_then_newest_challengers(mongo_db: Database) -> None:
    mongo_db["models"].insert_many([  # seeded in the documented shape of the models collection
        {"version": "c-old", "status": "challenger", "metrics": {"auc": 0.6}, "created_at": NOW - timedelta(days=2)},
        {"version": "retired", "status": "retired", "metrics": {}, "created_at": NOW},
        {"version": "champ", "status": "champion", "metrics": {"auc": 0.7}, "created_at": NOW - timedelta(days=9)},
        {"version": "c-new", "status": "challenger", "metrics": {"auc": 0.65}, "created_at": NOW - timedelta(days=1)},
    ])
    assert queries.model_documents(mongo_db)["version"].tolist() == ["champ", "c-new", "c-old"]
    assert queries.champion_document(mongo_db)["version"] == "champ"


@pytest.fixture
def clean_redis(redis_client: redis.Redis) -> redis.Redis:
    redis_client.flushdb()
    return redis_client


def test_queue_state_counts_undelivered_pending_and_oldest(clean_redis: redis.Redis) -> None:
    assert queries.queue_state(clean_redis) == queries.QueueState(exists=False)
    start_ms = int(NOW.timestamp() * 1000) - 600_000
    for i in range(150):  # seeded: the queue shape the intake engineer documents
        clean_redis.xadd(queries.QUEUE_STREAM, {"path": f"/a/{i}.wav"}, id=f"{start_ms + i}-0")
    clean_redis.xgroup_create(queries.QUEUE_STREAM, queries.QUEUE_GROUP, id="0")
    clean_redis.xreadgroup(queries.QUEUE_GROUP, "w1", {queries.QUEUE_STREAM: ">"}, count=20)
    clean_redis.xreadgroup(queries.QUEUE_GROUP, "w2", {queries.QUEUE_STREAM: ">"}, count=5)
    ids = [entry_id for entry_id, _ in clean_redis.xrange(queries.QUEUE_STREAM, count=3)]
    clean_redis.xack(queries.QUEUE_STREAM, queries.QUEUE_GROUP, *ids)  # the three oldest are done
    state = queries.queue_state(clean_redis, now=NOW)
    assert (state.undelivered, state.pending, state.backlog) == (125, 22, 147)
    assert state.oldest_age_s == pytest.approx(600 - 0.003, abs=1e-6)
    assert state.consumers.set_index("consumer")["pending"].to_dict() == {"w1": 17, "w2": 5}


def test_stream_samples_since(clean_redis: redis.Redis) -> None:
    base = int(NOW.timestamp() * 1000)
    for i, latency in enumerate([0.5, 1.5, 3.0]):
        clean_redis.xadd(queries.LATENCY_STREAM, {"latency_s": latency}, id=f"{base + i * 1000}-0")
    clean_redis.xadd(queries.WORKERS_STREAM, {"run_id": "r1", "workers": 3, "processing": 2, "queued": 9, "cpu_pct": 75.5, "memory_pct": 40}, id=f"{base}-0")
    latency = queries.latency_samples(clean_redis, NOW + timedelta(milliseconds=500))
    assert latency["latency_s"].tolist() == [1.5, 3.0]
    assert latency["time"].iloc[0] == NOW + timedelta(seconds=1)
    workers = queries.worker_samples(clean_redis, NOW)
    assert workers.iloc[0][["run_id", "workers", "processing", "queued", "cpu_pct", "memory_pct"]].tolist() == ["r1", 3, 2, 9, 75.5, 40]
    assert np.isnan(workers.iloc[0]["backlog"])  # a field the sample does not carry
    assert queries.latency_samples(clean_redis, NOW, limit=2)["latency_s"].tolist() == [1.5, 3.0]  # the newest, in time order
    clean_redis.xadd(queries.WORKERS_STREAM, {"workers": 4, "cpu_pct": 20}, id=f"{base + 1000}-0")
    assert queries.last_worker_sample(clean_redis, NOW)[["workers", "cpu_pct"]].tolist() == [4, 20]
    assert queries.last_worker_sample(clean_redis, NOW + timedelta(seconds=2)) is None


def test_streams_are_the_ones_their_writers_name() -> None:
    from store import latency, queue

    # The same objects, not equal copies: one definition to change.
    assert queries.QUEUE_STREAM is queue.QUEUE_STREAM and queries.QUEUE_GROUP is queue.QUEUE_GROUP
    assert queries.LATENCY_STREAM is latency.LATENCY_STREAM
