"""What the dashboard reads: MongoDB aggregations and Redis stream reads, returned as small DataFrames.

Every function only reads (``find``, ``aggregate``; ``XRANGE``/``XREVRANGE``/``XINFO``/``XPENDING``)
and filters on indexed fields (``created_at``, ``started_at``, ``run_id``, ``_id``): a query's cost follows the
documents in its time window, not the size of the collection; counts over quarter hours and days come from
the ``prediction_counts`` rollup the writers keep (:mod:`store.counts`), latency percentiles from the newest
:data:`LATENCY_SAMPLE` files. (``count_documents`` is avoided: nx-27017
answers it ten times slower than the equivalent aggregation.) Times come back timezone-aware in UTC; pages convert them for display.

Collections and streams written by later producers are read in their documented shapes:
``scaling_events`` (time, workers_before, workers_after, backlog, reason, recommendation), ``backups``
(backup_id, started_at, finished_at, path, counts, verified, status), ``models`` (version, status,
metrics, feature_version, created_at), the queue stream ``voxflow:queue`` with group ``analyzers``,
``voxflow:metrics:latency`` (field ``latency_s``) and ``voxflow:metrics:workers`` (fields ``workers``,
``backlog``, ``cpu_pct``, ``memory_pct``, and ``processing``/``queued``: the run's tasks on a worker and
waiting for one, recorded by ``tasks.scaling.ScalingMonitor``). Absent ones read as empty (missing fields as NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pymongo
import redis
from pymongo.database import Database

from store.counts import COUNTS, DUPLICATE_STAGE, SCORE_BINS, bucket_start, model_scores
from store.counts import FIELDS as COUNT_FIELDS  # predictions, positives, quarantined
from store.latency import LATENCY_STREAM
from store.queue import QUEUE_GROUP, QUEUE_STREAM
from voxflow.scaling import ERROR_STAGES

WORKERS_STREAM = "voxflow:metrics:workers"

RUN_FIELDS = (
    "run_id", "source", "status", "started_at", "finished_at", "seen", "scored", "skipped",
    "duplicates", "quarantined", "ignored", "wall_s", "clips_per_s", "model_version", "workers_max_seen", "input_drift", "error",
)
WORKER_FIELDS = ("workers", "backlog", "processing", "queued", "cpu_pct", "memory_pct")
_KEY_SEPARATOR = "\x1f"
# Latency percentiles are taken over at most this many of the newest files (queue latencies or predictions).
LATENCY_SAMPLE = 2_000
# Undelivered queue entries are counted up to this many (Redis < 7 has no group lag to ask for).
_UNDELIVERED_CAP = 100_000


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def recent_predictions(db: Database, since: datetime, *, limit: int = LATENCY_SAMPLE) -> pd.DataFrame:
    """Creation time and per-file processing time (decode + features) of the newest ``limit`` predictions, those since ``since``.

    Reads the newest ``limit`` predictions in ``created_at`` index order and keeps those since ``since``:
    its cost follows ``limit`` (~80 ms for 2,000 on nx-27017), whatever the rate of results. (With the range
    in the query, nx-27017 evaluates it over every document in the range first, limit or not.)

    Returns
    -------
    DataFrame
        ``created_at`` (UTC, tz-aware), ``processing_ms``; newest first.
    """
    docs = db["predictions"].find({}, {"_id": 0, "created_at": 1, "timings_ms": 1}).sort("created_at", pymongo.DESCENDING).limit(limit)
    rows = [(d.get("created_at"), (d.get("timings_ms") or {}).get("decode"), (d.get("timings_ms") or {}).get("features")) for d in docs]
    frame = pd.DataFrame(rows, columns=["created_at", "decode", "features"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["processing_ms"] = pd.to_numeric(frame["decode"], errors="coerce") + pd.to_numeric(frame["features"], errors="coerce")
    return frame.loc[frame["created_at"] >= since, ["created_at", "processing_ms"]].reset_index(drop=True)


def processing_percentiles(recent: pd.DataFrame, since: datetime, qs: tuple[float, ...] = (50, 95)) -> list[float | None]:
    """Percentiles (0-100, nearest rank at or above) of per-file processing time in ms since ``since``; None without files."""
    values = recent.loc[recent["created_at"] >= since, "processing_ms"].dropna()
    if values.empty:
        return [None for _ in qs]
    return [float(values.quantile(q / 100.0, interpolation="higher")) for q in qs]


def counts_per_quarter_hour(db: Database, since: datetime) -> pd.DataFrame:
    """Predictions, screen-positives and quarantined files per UTC quarter hour, from the quarter hour of ``since`` on.

    Reads the ``prediction_counts`` rollup (:mod:`store.counts`: one small document per quarter hour, kept
    as results are stored): its cost follows the quarter hours asked for, not the predictions stored.

    Returns
    -------
    DataFrame
        ``start`` (UTC, tz-aware), ``predictions``, ``positives``, ``quarantined``, in time order; quarter hours without any are absent.
    """
    docs = db[COUNTS].find({"_id": {"$gte": bucket_start(since)}}).sort("_id", pymongo.ASCENDING)
    buckets = _frame(list(docs), ["_id", *COUNT_FIELDS])
    counts = buckets[list(COUNT_FIELDS)].fillna(0).astype("int64")
    return pd.concat([pd.to_datetime(buckets["_id"], utc=True).rename("start"), counts], axis=1)


def counts_per_day(db: Database, since: datetime, tz: str) -> pd.DataFrame:
    """Predictions, screen-positives and quarantined files per calendar day in time zone ``tz``, from ``since`` on.

    Sums the quarter hours of :func:`counts_per_quarter_hour` per local day: exact in every time zone
    (every UTC offset is a multiple of 15 minutes), and its cost follows the days shown.

    Returns
    -------
    DataFrame
        ``day`` (local date, ``datetime64``), ``predictions``, ``positives``, ``quarantined``; days without any are absent.
    """
    quarters = counts_per_quarter_hour(db, since)
    day = quarters["start"].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize().rename("day")
    return quarters[list(COUNT_FIELDS)].groupby(day).sum().reset_index().sort_values("day", ignore_index=True)


@dataclass(frozen=True)
class RunTotals:
    """Runs started in a window and the counts of those that finished; rates are None when nothing was analysed."""

    runs: int
    scored: int
    quarantined: int
    errors: int

    @property
    def analysed(self) -> int:
        return self.scored + self.quarantined

    @property
    def quarantine_rate(self) -> float | None:
        return self.quarantined / self.analysed if self.analysed else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.analysed if self.analysed else None


def run_totals(db: Database, since: datetime) -> RunTotals:
    """How many runs started since ``since``, and the scored, quarantined and errored files of those that finished.

    A run's counts are written when it finishes, so a running (or failed) run adds nothing to the scored and
    quarantined files, nor its quarantine records to the errors: both sides of a rate cover the same runs.
    Errors are quarantine records at a pipeline stage (:data:`ERROR_STAGES`).
    """
    runs = {r["run_id"]: r for r in db["runs"].find({"started_at": {"$gte": since}}, {"_id": 0, "run_id": 1, "scored": 1, "quarantined": 1})}
    finished = [r for r in runs.values() if r.get("scored") is not None]
    if not finished:
        return RunTotals(len(runs), 0, 0, 0)
    errored = db["quarantine"].aggregate([
        {"$match": {"run_id": {"$in": [r["run_id"] for r in finished]}, "stage": {"$in": list(ERROR_STAGES)}}},
        {"$group": {"_id": None, "n": {"$sum": 1}}},
    ])
    return RunTotals(
        runs=len(runs),
        scored=sum(int(r["scored"]) for r in finished),
        quarantined=sum(int(r.get("quarantined") or 0) for r in finished),
        errors=next((int(r["n"]) for r in errored), 0),
    )


def latency_samples(client: redis.Redis, since: datetime, *, limit: int = LATENCY_SAMPLE) -> pd.DataFrame:
    """The newest ``limit`` enqueue-to-persist latencies (``voxflow:metrics:latency``) since ``since``: ``time`` (UTC), ``latency_s``."""
    return _stream_frame(client, LATENCY_STREAM, since, ("latency_s",), newest=limit)


def worker_samples(client: redis.Redis, since: datetime) -> pd.DataFrame:
    """Cluster samples (``voxflow:metrics:workers``) since ``since``: ``time`` (UTC), ``run_id`` and :data:`WORKER_FIELDS`."""
    return _stream_frame(client, WORKERS_STREAM, since, WORKER_FIELDS, text=("run_id",))


def last_worker_sample(client: redis.Redis, since: datetime) -> pd.Series | None:
    """The newest cluster sample at or after ``since`` (``time``, ``run_id`` and :data:`WORKER_FIELDS`), None when there is none."""
    samples = _stream_frame(client, WORKERS_STREAM, since, WORKER_FIELDS, text=("run_id",), newest=1)
    return None if samples.empty else samples.iloc[-1]


def _stream_frame(
    client: redis.Redis, stream: str, since: datetime, numeric: tuple[str, ...], *, text: tuple[str, ...] = (), newest: int | None = None
) -> pd.DataFrame:
    """Entries since ``since`` in time order, with the ``numeric`` fields as numbers and the ``text`` ones as stored;
    only the ``newest`` of them when given (one XREVRANGE, a bounded read)."""
    start = f"{int(since.timestamp() * 1000)}-0"
    if newest is None:
        entries = client.xrange(stream, min=start, max="+")
    else:
        entries = client.xrevrange(stream, max="+", min=start, count=newest)[::-1]
    frame = _frame(
        [{"time": int(entry_id.split("-")[0]), **{k: fields.get(k) for k in (*text, *numeric)}} for entry_id, fields in entries],
        ["time", *text, *numeric],
    )
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


@dataclass(frozen=True)
class QueueState:
    """The work queue now: entries not yet delivered, delivered but unacknowledged, and the oldest of them."""

    exists: bool
    undelivered: int = 0
    pending: int = 0
    oldest_age_s: float | None = None
    consumers: pd.DataFrame | None = None

    @property
    def backlog(self) -> int:
        return self.undelivered + self.pending


def queue_state(client: redis.Redis, *, now: datetime | None = None) -> QueueState:
    """Read ``voxflow:queue`` and its group ``analyzers`` (XINFO, XPENDING, XRANGE); never acknowledges anything."""
    now = now or utc_now()
    if not client.exists(QUEUE_STREAM):
        return QueueState(exists=False)
    group = next((g for g in client.xinfo_groups(QUEUE_STREAM) if g["name"] == QUEUE_GROUP), None)
    last_delivered = group["last-delivered-id"] if group else "0-0"
    first_undelivered = client.xrange(QUEUE_STREAM, min=f"({last_delivered}", max="+", count=1)
    if group is not None and group.get("lag") is not None:
        undelivered = int(group["lag"])
    else:
        undelivered = len(client.xrange(QUEUE_STREAM, min=f"({last_delivered}", max="+", count=_UNDELIVERED_CAP))
    pending, oldest_ids = 0, [entry_id for entry_id, _ in first_undelivered]
    consumers = pd.DataFrame(columns=["consumer", "pending", "idle_s"])
    if group is not None:
        summary = client.xpending(QUEUE_STREAM, QUEUE_GROUP)
        pending = int(summary["pending"])
        if pending:
            oldest_ids.append(summary["min"])
        consumers = pd.DataFrame(
            [{"consumer": c["name"], "pending": int(c["pending"]), "idle_s": int(c["idle"]) / 1000} for c in client.xinfo_consumers(QUEUE_STREAM, QUEUE_GROUP)],
            columns=["consumer", "pending", "idle_s"],
        )
    oldest_ms = min((int(i.split("-")[0]) for i in oldest_ids), default=None)
    age = None if oldest_ms is None else max(0.0, now.timestamp() - oldest_ms / 1000)
    return QueueState(True, undelivered, pending, age, consumers)


def is_drain_run(db: Database, run_id: object) -> bool:
    """Whether ``run_id`` names a queue drain's run (its source is the queue), not an analyze of a SOURCE."""
    doc = db["runs"].find_one({"run_id": run_id}, {"_id": 0, "source": 1}) if isinstance(run_id, str) else None
    return doc is not None and doc.get("source") == QUEUE_STREAM


def recent_runs(db: Database, *, limit: int = 50) -> pd.DataFrame:
    """The most recently started runs, newest first, with :data:`RUN_FIELDS` as columns."""
    docs = db["runs"].find({}, {"_id": 0, **{f: 1 for f in RUN_FIELDS}}).sort("started_at", pymongo.DESCENDING).limit(limit)
    return _frame(list(docs), list(RUN_FIELDS))


def quarantine_reasons(db: Database, run_id: str) -> pd.DataFrame:
    """One run's quarantined files grouped by stage and reason: ``stage``, ``reason``, ``files``, most frequent first.

    Its duplicates' records are left out: no bad files, each with a reason of its own (``voxflow quarantine`` lists them).
    """
    # One string key: nx-27017 0.8.1 does not group by a document _id ({"stage": ..., "reason": ...}).
    rows = db["quarantine"].aggregate([
        {"$match": {"run_id": run_id, "stage": {"$ne": DUPLICATE_STAGE}}},
        {"$group": {"_id": {"$concat": ["$stage", _KEY_SEPARATOR, "$reason"]}, "files": {"$sum": 1}}},
    ])
    frame = _frame(
        [dict(zip(("stage", "reason"), r["_id"].split(_KEY_SEPARATOR, 1)), files=r["files"]) for r in rows],
        ["stage", "reason", "files"],
    )
    return frame.sort_values(["files", "stage", "reason"], ascending=[False, True, True], ignore_index=True)


def scaling_events(db: Database, since: datetime) -> pd.DataFrame:
    """Scaling events since ``since`` in time order: time, run_id, workers_before, workers_after, backlog, reason, recommendation (action)."""
    columns = ["time", "run_id", "workers_before", "workers_after", "backlog", "reason", "recommendation"]
    docs = db["scaling_events"].find({"time": {"$gte": since}}, {"_id": 0, **{c: 1 for c in columns}}).sort("time", pymongo.ASCENDING)
    frame = _frame(list(docs), columns)
    # The recommendation is stored as the policy's dict (action, reason, triggers); its action is what is shown.
    frame["recommendation"] = frame["recommendation"].map(lambda r: r.get("action") if isinstance(r, dict) else r)
    return frame


def model_documents(db: Database) -> pd.DataFrame:
    """Champion and challengers from the ``models`` collection: version, status, feature_version, created_at, metrics."""
    columns = ["version", "status", "feature_version", "created_at", "metrics"]
    docs = db["models"].find({"status": {"$in": ["champion", "challenger"]}}, {"_id": 0, **{c: 1 for c in columns}})
    frame = _frame(list(docs), columns)
    order = frame["status"].map({"champion": 0, "challenger": 1})
    return frame.assign(_order=order).sort_values(["_order", "created_at"], ascending=[True, False]).drop(columns="_order").reset_index(drop=True)


@dataclass(frozen=True)
class ScoreDistribution:
    """Scores in :data:`SCORE_BINS` equal bins over [0, 1] (``bin_start``, ``clips``, ``share``) and the screen-positive count."""

    histogram: pd.DataFrame
    positive: int
    total: int


def score_distribution(db: Database, since: datetime, *, model_version: str) -> ScoreDistribution:
    """How ``model_version`` scored clips from the quarter hour of ``since`` on.

    Reads the ``score_counts`` rollup (:mod:`store.counts`), whose positives follow each prediction's own
    threshold, as its label did: a few hundred small documents a week, whatever the predictions stored.
    """
    counts, positive = model_scores(db, since, model_version)
    total = sum(counts)
    histogram = pd.DataFrame({
        "bin_start": [i / SCORE_BINS for i in range(SCORE_BINS)],
        "clips": counts,
        "share": [c / total if total else 0.0 for c in counts],
    })
    return ScoreDistribution(histogram, positive, total)


def last_backup(db: Database) -> dict[str, Any] | None:
    """The most recently started backup document, without ``_id``, or None when there is none."""
    return db["backups"].find_one({}, {"_id": 0}, sort=[("started_at", pymongo.DESCENDING)])


def predictions_count(db: Database) -> int:
    """How many predictions are stored (from collection metadata, not a scan)."""
    return db["predictions"].estimated_document_count()


def utc_now() -> datetime:
    """The current time, timezone-aware UTC: the one clock the pages read "today" and their windows from.

    Every default ``now`` here calls it when it is needed, so a test can pin what a whole page run takes for now
    (replace this function) and compute its expectations from the same instant.
    """
    return datetime.now(timezone.utc)


def local_today(tz: str, *, now: datetime | None = None) -> date:
    """The calendar date in time zone ``tz`` at ``now`` (default: the current time)."""
    return pd.Timestamp(now or utc_now()).tz_convert(tz).date()


def day_start(day: date, tz: str) -> datetime:
    """The UTC instant at which ``day`` begins in time zone ``tz``.

    That is local midnight, or the first instant after it on days when a DST change skips midnight
    (America/Santiago 2026-09-06 begins at 01:00); where a change repeats midnight, its first occurrence.

    Examples
    --------
    >>> day_start(date(2026, 9, 6), "America/Santiago").isoformat()
    '2026-09-06T04:00:00+00:00'
    """
    start = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return start.tz_convert("UTC").to_pydatetime()


def utc_since(hours: float, *, now: datetime | None = None) -> datetime:
    """The instant ``hours`` before ``now`` (default: the current time), timezone-aware UTC."""
    return (now or utc_now()) - timedelta(hours=hours)


def champion_document(db: Database) -> dict[str, Any] | None:
    """The ``models`` document with status champion, newest first, or None while no registry writes there."""
    return db["models"].find_one({"status": "champion"}, {"_id": 0}, sort=[("created_at", pymongo.DESCENDING)])
