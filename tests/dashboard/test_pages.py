"""Every page in AppTest against a database seeded by a real analyze run: the numbers shown are the stored ones."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd
import pymongo
import pytest
import redis
from streamlit.testing.v1 import AppTest

from dashboard import queries
from store.counts import BUCKET, COUNTS
from tests.dashboard.conftest import PAGES, Seeded, charts, metrics
from tests.voxflow_cli import env_db, reserve_port

pytestmark = pytest.mark.slow

ERROR_STAGES = {"features", "timeout", "worker"}


def _tokyo(instant) -> pd.Timestamp:
    return pd.Timestamp(instant).tz_convert("Asia/Tokyo").tz_localize(None)


def _deltas(app: AppTest) -> dict[str, str]:
    return {m.label: m.proto.delta for m in app.metric}


def _champion(seeded: Seeded) -> dict:
    [champion] = [m for m in seeded.models if m["status"] == "champion"]
    return champion


def _today(seeded: Seeded, now: datetime) -> tuple[str, str, str]:
    """The Overview's Scored / Screen-positive / Quarantined today at ``now`` (Asia/Tokyo days), counted from the run's documents."""
    midnight = pd.Timestamp(now).tz_convert("Asia/Tokyo").normalize()
    today = [r for r in seeded.results if pd.Timestamp(r["created_at"]) >= midnight]
    positive = sum(1 for r in today if r["score"] >= r["threshold"])
    quarantined = sum(1 for r in seeded.quarantine if pd.Timestamp(r["created_at"]) >= midnight)
    return f"{len(today)}", (f"{positive} ({positive / len(today):.1%})" if today else "0"), f"{quarantined}"


def _shown_today(app: AppTest) -> tuple[str, str, str]:
    shown = metrics(app)
    return shown["Scored today"], shown["Screen-positive today"], shown["Quarantined today"]


def _pin_clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """Make ``now`` the dashboard's current time (queries.utc_now) for the pages run from here on."""
    monkeypatch.setattr(queries, "utc_now", lambda: now)


def test_overview(seeded: Seeded, open_page: Callable[..., AppTest], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # The page's clock, pinned: "today" below is the day it shows, even when local midnight (15:00 UTC) falls during the test.
    now = datetime.now(timezone.utc)
    _pin_clock(monkeypatch, now)
    s, q = seeded.summary["scored"], seeded.summary["quarantined"]
    assert (s, q) == (4, 4), seeded.summary
    processing = [r["timings_ms"]["decode"] + r["timings_ms"]["features"] for r in seeded.results]
    errors = sum(1 for r in seeded.quarantine if r["stage"] in ERROR_STAGES)

    # CPU and memory come from a worker sample of the last 2 minutes (a live cluster): the run's last one, sent again now
    # as a run still going would (the seeded run may have ended longer ago than that).
    _, sample = redis_client.xrevrange("voxflow:metrics:workers", count=1)[0]
    live = redis_client.xadd("voxflow:metrics:workers", sample)
    try:
        app = open_page("overview", seeded.env)
    finally:
        redis_client.xdel("voxflow:metrics:workers", live)
    shown = metrics(app)
    assert shown["Predictions stored"] == f"{s:,}"
    assert shown["Runs (last 1 h)"] == "1" and shown["Files analysed (last 1 h)"] == f"{s + q}"
    assert shown["Quarantine rate (last 1 h)"] == f"{q / (s + q):.2%}" == "50.00%"
    assert shown["Error rate (last 1 h)"] == f"{errors / (s + q):.2%}"
    for name, pct in (("Latency p50", 50), ("Latency p95", 95)):
        assert shown[name] == f"{np.percentile(processing, pct, method='higher') / 1000:.3f} s"
    assert shown["Champion model"] == seeded.summary["model_version"] == _champion(seeded)["version"]
    # Triggers: CPU and memory from the live worker sample, backlog from the queue.
    assert (shown["CPU"], shown["Memory"]) == (f"{float(sample['cpu_pct']):.0f}%", f"{float(sample['memory_pct']):.0f}%")
    assert shown["Backlog"] == "150 files" and _deltas(app)["Backlog"] == "firing (threshold > 100 files)"
    assert int(sample["workers"]) < 4  # below VOXFLOW_DASK_MAX_WORKERS: the backlog asks for more workers
    [advice] = [w.value for w in app.warning]
    assert advice.startswith("Recommendation: Scale out: add workers — firing: ") and "backlog" in advice
    assert not [i.value for i in app.info if "No clips" in i.value or "No runs" in i.value]
    # Today's figures come from the prediction_counts rollup: they equal a direct count of the stored documents.
    assert _shown_today(app) == _today(seeded, now)

    # With queue latencies reported (seeded), the percentiles and the p95 trigger use them instead.
    latencies = [0.8, 1.2, 2.6, 3.1, 0.9]
    for seconds in latencies:
        redis_client.xadd("voxflow:metrics:latency", {"latency_s": seconds})
    try:
        app = open_page("overview", seeded.env)
    finally:
        redis_client.delete("voxflow:metrics:latency")
    shown = metrics(app)
    assert shown["Latency p95"] == f"{np.percentile(latencies, 95):.3f} s" == "3.000 s"
    assert shown["p95 latency"] == "3.00 s" and _deltas(app)["p95 latency"].startswith("firing")


def test_overview_advice_on_an_existing_cluster_is_for_its_operator(seeded: Seeded, open_page: Callable[..., AppTest], redis_client: redis.Redis) -> None:
    # VOXFLOW_DASK_MAX_WORKERS (by default this host's CPU count) bounds the clusters voxflow starts, not an existing one:
    # at 1, the advice for a cluster of any size with its backlog firing was to hold "at the 1-worker maximum".
    _, sample = redis_client.xrevrange("voxflow:metrics:workers", count=1)[0]
    live = redis_client.xadd("voxflow:metrics:workers", sample)  # the workers, with no scheduler answering at the address
    with reserve_port() as unanswered:
        address = f"tcp://127.0.0.1:{unanswered.getsockname()[1]}"
        try:
            app = open_page("overview", {**seeded.env, "VOXFLOW_DASK_MAX_WORKERS": "1", "VOXFLOW_DASK_ADDRESS": address})
        finally:
            redis_client.xdel("voxflow:metrics:workers", live)
    [advice] = [w.value for w in app.warning]
    assert advice.startswith("Recommendation: Scale out: add workers — firing: ") and "backlog" in advice and "maximum" not in advice
    assert advice.endswith(f"(advice for the operator of the Dask cluster at {address}: voxflow does not scale it)")


def test_today_turns_at_local_midnight_on_the_pages_clock(seeded: Seeded, open_page: Callable[..., AppTest], monkeypatch: pytest.MonkeyPatch) -> None:
    # The first Tokyo midnight (15:00 UTC) after the run: a microsecond before it the run's last documents are today's;
    # at it, none are. Each side, the page shows the day of its clock.
    last = max(pd.Timestamp(r["created_at"]) for r in seeded.results + seeded.quarantine)
    midnight = (last.tz_convert("Asia/Tokyo") + pd.Timedelta(days=1)).normalize().tz_convert("UTC")
    before, after = (midnight - pd.Timedelta(microseconds=1)).to_pydatetime(), midnight.to_pydatetime()
    assert _today(seeded, before) != ("0", "0", "0") and _today(seeded, after) == ("0", "0", "0")
    for now in (before, after):
        _pin_clock(monkeypatch, now)
        assert _shown_today(open_page("overview", seeded.env)) == _today(seeded, now), now


def test_the_rollup_matches_a_direct_count_of_the_runs_documents(seeded: Seeded) -> None:
    db = env_db(seeded.env, tz_aware=True)
    buckets = list(db[COUNTS].find())
    assert buckets, "the analyze run kept the rollup as it persisted its chunks"
    predictions = list(db["predictions"].find({}, {"_id": 0, "score": 1, "threshold": 1, "created_at": 1}))
    assert len(predictions) == seeded.summary["scored"] == 4
    assert {name: sum(b.get(name, 0) for b in buckets) for name in ("predictions", "positives", "quarantined")} == {
        "predictions": len(predictions),
        "positives": sum(1 for p in predictions if p["score"] >= p["threshold"]),
        "quarantined": db["quarantine"].count_documents({}),
    }
    for bucket in buckets:  # each quarter hour holds exactly the documents created in it
        inside = [p for p in predictions if bucket["_id"] <= p["created_at"] < bucket["_id"] + BUCKET]
        assert bucket.get("predictions", 0) == len(inside)


def test_queue(seeded: Seeded, open_page: Callable[..., AppTest]) -> None:
    app = open_page("queue", seeded.env)
    shown = metrics(app)
    assert (shown["Backlog"], shown["Not yet delivered"], shown["Pending (unacknowledged)"]) == ("150 files", "130 files", "20 files")
    oldest = int(shown["Oldest waiting"].removesuffix(" s").replace(",", ""))
    elapsed = (pd.Timestamp.now("UTC") - seeded.now).total_seconds()
    assert 0 <= oldest <= elapsed + 1
    consumers = app.dataframe[0].value
    assert consumers[["consumer", "pending"]].values.tolist() == [["analyzer-1", 20]]
    assert not [i.value for i in app.info if "backlog" in i.value.lower()]
    [(spec, backlog)] = charts(app)  # the analyze run's backlog, a line of its own
    assert spec["encoding"]["detail"]["field"] == "run_id" and set(backlog["run_id"]) == {seeded.summary["run_id"]}


def test_scaling(seeded: Seeded, open_page: Callable[..., AppTest], redis_client: redis.Redis) -> None:
    stored = list(env_db(seeded.env, tz_aware=True)["scaling_events"].find().sort("time", 1))
    assert stored, "the analyze run records at least its cluster start"
    app = open_page("scaling", seeded.env)
    assert any("No Dask scheduler configured" in i.value for i in app.info)
    assert metrics(app)["Scaling events"] == str(len(stored))
    events = app.dataframe[0].value
    assert events["workers_after"].tolist() == [e["workers_after"] for e in stored]
    assert events["recommendation"].tolist() == [e["recommendation"]["action"] for e in stored]
    assert abs(events["time"].iloc[0] - _tokyo(stored[0]["time"])) < pd.Timedelta(milliseconds=2)
    infos = [i.value for i in app.info]
    assert redis_client.xlen("voxflow:metrics:workers") and not [i for i in infos if "No worker samples" in i]
    # The run's samples carry its task counts; with no scheduler to ask, the page shows the latest from the stream.
    assert not [i for i in infos if i.startswith("No task samples")]
    entry_id, sample = redis_client.xrevrange("voxflow:metrics:workers", count=1)[0]
    shown = metrics(app)
    assert (shown["Tasks processing (last sample)"], shown["Tasks queued (last sample)"]) == (sample["processing"], sample["queued"])
    assert shown["Last sample"] == _tokyo(pd.Timestamp(int(entry_id.split("-")[0]), unit="ms", tz="UTC")).strftime("%Y-%m-%d %H:%M:%S")
    counts = [(int(f["processing"]), int(f["queued"])) for _, f in redis_client.xrange("voxflow:metrics:workers")]
    assert counts[-1] == (0, 0) and max(p + q for p, q in counts) >= 1  # the run's last sample follows its last chunk
    # Each run is a line of its own: none is drawn through the time between runs, when no cluster was sampled.
    (workers_spec, workers), (tasks_spec, tasks) = charts(app)
    for spec, data in ((workers_spec, workers), (tasks_spec, tasks)):
        assert spec["encoding"]["detail"] == {"field": "run_id", "type": "nominal"}
        assert "'%H:%M'" in spec["encoding"]["x"]["axis"]["labelExpr"]  # 24-hour labels: Vega's default read 09:30 for 21:30
        assert set(data["run_id"]) == {seeded.summary["run_id"]}


def test_runs(seeded: Seeded, open_page: Callable[..., AppTest]) -> None:
    run_id = seeded.summary["run_id"]
    app = open_page("runs", seeded.env)
    runs = app.dataframe[0].value
    row = runs.iloc[0]
    assert len(runs) == 1 and row["run_id"] == run_id and row["status"] == "completed"
    for key in ("seen", "scored", "skipped", "duplicates", "quarantined"):
        assert row[key] == seeded.summary[key]
    assert row["prefect"] == f"http://prefect.example:4200/runs/flow-run/{run_id}"
    shown = metrics(app)
    assert (shown["Status"], shown["Scored"], shown["Quarantined"], shown["Duplicates"]) == ("completed", "4", "4", "0")
    assert shown["Throughput"] == f"{seeded.summary['clips_per_s']:.2f} clips/s"
    assert shown["Wall time"] == f"{seeded.summary['wall_s']:.1f} s"
    reasons = app.dataframe[1].value
    expected = Counter((r["stage"], r["reason"]) for r in seeded.quarantine)
    assert {(r.stage, r.reason): r.files for r in reasons.itertuples()} == dict(expected)
    assert sum(expected.values()) == 4 and {stage for stage, _ in expected} >= {"decode", "quality"}


def test_models(seeded: Seeded, open_page: Callable[..., AppTest]) -> None:
    app = open_page("models", seeded.env)
    shown = metrics(app)
    champion = _champion(seeded)
    [challenger] = [m for m in seeded.models if m["status"] == "challenger"]
    assert shown["Champion"] == champion["version"]
    table = app.dataframe[0].value
    assert table["version"].tolist() == [champion["version"], challenger["version"]]
    assert table["auc"].tolist() == [champion["metrics"]["auc"], challenger["metrics"]["auc"]]
    positive = sum(1 for r in seeded.results if r["label"] == "pathological")
    trained = champion["training"]["n_positive"] / champion["training"]["n"]
    assert shown["Clips scored this week"] == "4"
    assert shown["Screen-pathological this week"] == f"{positive / 4:.1%}"
    assert shown["Pathological in training data"] == f"{trained:.1%}"
    assert _deltas(app)["Pathological in training data"] == f"{100 * (positive / 4 - trained):+.1f} pp vs training"
    backup = seeded.backup
    assert shown["Last backup"] == _tokyo(backup["finished_at"]).strftime("%Y-%m-%d %H:%M:%S")
    assert (shown["Status"], shown["Verified"]) == (backup["status"], "yes") == ("verified", "yes")


class _Commands(pymongo.monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.database_name, event.command_name))

    def succeeded(self, event: object) -> None:
        pass

    def failed(self, event: object) -> None:
        pass


def test_pages_only_read(seeded: Seeded, open_page: Callable[..., AppTest], monkeypatch: pytest.MonkeyPatch) -> None:
    mongo = _Commands()
    pymongo.monitoring.register(mongo)  # applies to clients created from now on: the dashboard's
    sent: list[str] = []
    execute = redis.Redis.execute_command

    def recording(self, *args, **options):
        sent.append(" ".join(str(a) for a in args[:2] if str(a).isupper() or str(a).lower() in {"groups", "consumers"}).upper())
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recording)
    for page in PAGES:
        open_page(page, seeded.env)
    ours = {name for db, name in mongo.seen if db == seeded.env["VOXFLOW_MONGO_DB"]}
    assert ours and ours <= {"find", "aggregate", "count", "getMore"}, ours
    assert sent and set(sent) <= {"PING", "EXISTS", "XRANGE", "XREVRANGE", "XINFO GROUPS", "XINFO CONSUMERS", "XPENDING"}, set(sent)
