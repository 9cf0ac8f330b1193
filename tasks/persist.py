"""Persist chunk results as they complete: Parquet features, MongoDB documents, Redis cache and metrics."""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Sequence

import psutil
import pyarrow as pa
from pymongo import MongoClient
from redis import Redis

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from models.artifact import ModelCard
from store.cache import LiveMetrics, PredictionCache, RedisOutages, connect_redis
from store.counts import DUPLICATE_STAGE
from store.feature_store import FeatureStore
from store.models import ModelStore
from store.mongo import LISTING_FIELDS, ResultStore, connect_mongo
from store.runs import close_abandoned_runs
from tasks.cluster import cluster_bounds
from tasks.ingest import Duplicate, Rejection
from voxflow import services
from voxflow.errors import DatabaseError, VoxflowError
from voxflow.interrupts import completed_runs, stop_signal
from voxflow.settings import Settings

log = logging.getLogger(__name__)

_FEATURE_COLUMNS = frozenset(FEATURE_NAMES)
_CACHED_FIELDS = ("audio_sha256", "model_version", "score", "label", *LISTING_FIELDS)


@dataclass
class Stores:
    """Every store a run writes to, opened once per flow run; ``with`` closes its clients."""

    results: ResultStore
    models: ModelStore
    cache: PredictionCache
    metrics: LiveMetrics
    features: FeatureStore
    mongo: MongoClient
    redis: Redis

    def __enter__(self) -> "Stores":
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Closed here, pymongo's monitor threads end while the run's workers shut down; left open,
        # pymongo's exit handler waits for them (~0.4 s at the end of every command).
        self.mongo.close()
        self.redis.close()


def open_stores(settings: Settings) -> Stores:
    """Connect to the configured (or embedded) MongoDB and Redis, ensuring indexes and the per-quarter-hour counts.

    The prediction cache is scoped to ``settings.mongo_db``. It and the live metrics are best effort: MongoDB is the
    record of truth, and a run goes on while Redis does not answer (:class:`~store.cache.RedisOutages`). When any
    step fails, the clients opened so far are closed.
    """
    with ExitStack() as opened:
        mongo = opened.enter_context(connect_mongo(services.mongo_uri(settings)))
        db = mongo[settings.mongo_db]
        results = ResultStore(db, retry_s=settings.mongo_retry_s)
        results.ensure_indexes()
        results.ensure_counts()
        redis_client = opened.enter_context(connect_redis(services.redis_url(settings)))
        outages = RedisOutages()
        stores = Stores(
            results=results,
            models=ModelStore(db),
            cache=PredictionCache(redis_client, ttl_s=settings.cache_ttl_s, database=settings.mongo_db, outages=outages),
            metrics=LiveMetrics(redis_client, maxlen=settings.metrics_maxlen, outages=outages),
            features=FeatureStore(settings.feature_store_dir),
            mongo=mongo,
            redis=redis_client,
        )
        opened.pop_all()
    return stores


def prediction_docs(table: pa.Table, *, run_id: str, card: ModelCard, created_at: datetime) -> list[dict[str, Any]]:
    """One MongoDB document per scored row: the score, why, and what it was computed from."""
    docs = []
    for row in table.select([c for c in table.column_names if c not in _FEATURE_COLUMNS]).to_pylist():
        docs.append(
            {
                "audio_sha256": row["audio_sha256"],
                "model_version": card.version,
                "feature_version": card.feature_version,
                "run_id": run_id,
                "path": row["path"],
                "subject_id": row["subject_id"],
                "reference_label": row["reference_label"],
                "score": row["score"],
                "label": row["label"],
                "threshold": card.threshold,
                "top_factors": json.loads(row["top_factors"]),
                "quality_flags": row["quality_flags"],
                "duration_s": row["duration_s"],
                "sample_rate": row["source_rate"],
                "channels": row["channels"],
                "size_bytes": row["size_bytes"],
                "timings_ms": {"decode": row["decode_ms"], "features": row["features_ms"]},
                "created_at": created_at,
            }
        )
    return docs


@contextmanager
def recorded_run(results: ResultStore, card: ModelCard, settings: Settings, *, run_id: str, source: str) -> Iterator[dict[str, Any]]:
    """The run's ``runs`` document: "running" from here on; when the block raises, "interrupted" (a stop signal:
    Ctrl-C, SIGTERM, SIGHUP; or SystemExit, which a flow run whose worker was killed meets) or "failed", with the
    error, its ``wall_s`` so far, the counts the block put in the yielded dict (``seen``, ``skipped``... as each
    became known) and the counts the run stored (unless MongoDB is what failed). Should MongoDB refuse that record
    too, the block's own error is what the caller gets: the next run on this host marks the run crashed.

    The block finishes the document itself (``ResultStore.finish_run``) with its summary, through
    :func:`voxflow.interrupts.record_completed` where a stop must not undo it: a stop signal after that leaves it
    "completed".
    """
    close_abandoned_runs(results)
    bounds = cluster_bounds(settings)
    process = psutil.Process()
    results.start_run(
        {
            "run_id": run_id, "source": source, "status": "running", "started_at": datetime.now(timezone.utc),
            "model_version": card.version, "feature_version": card.feature_version,
            # An existing cluster's bounds are its operator's, unknown here: null (its workers seen are the summary's workers_max_seen).
            "workers_min": None if bounds.existing else bounds.min_workers, "workers_max": bounds.max_workers,
            "host": socket.gethostname(), "pid": process.pid, "pid_started": process.create_time(),
        }
    )
    started = time.perf_counter()
    known: dict[str, Any] = {}
    try:
        yield known
    except BaseException as exc:
        if run_id in completed_runs():
            raise
        try:
            results.finish_run(run_id, {**known, **_ended_by(exc, results, run_id), "wall_s": round(time.perf_counter() - started, 3)})
        except VoxflowError as unrecorded:
            log.warning("run %s could not be recorded as ended (%s)", run_id, unrecorded.reason)
        raise


def _ended_by(exc: BaseException, results: ResultStore, run_id: str) -> dict[str, Any]:
    """The fields of a run that ``exc`` ended: its status, error and the counts it stored."""
    counts = {} if isinstance(exc, DatabaseError) else results.stored_counts(run_id)
    stopped = stop_signal(exc)
    if stopped is not None:
        status, error = "interrupted", f"{'Ctrl-C (SIGINT)' if stopped == signal.SIGINT else stopped.name} before the run finished; a re-run finishes the rest"
    elif isinstance(exc, SystemExit):
        # voxflow raises none in a flow: the process was made to exit. Rich, under Prefect's console log, does so
        # (SystemExit 1) at the first line after its output pipe closed: the worker relaying it was killed.
        status, error = "interrupted", f"SystemExit {exc.code} (its output gone: a worker killed?) before the run finished; a re-run finishes the rest"
    else:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    return {"status": status, "finished_at": datetime.now(timezone.utc), **counts, "error": error}


def quarantine_docs(rejections: Sequence[dict[str, Any] | Rejection], *, run_id: str, created_at: datetime) -> list[dict[str, Any]]:
    """One MongoDB document per rejected file of this run."""
    docs = []
    for rejection in rejections:
        fields = rejection if isinstance(rejection, dict) else rejection.__dict__
        docs.append({**fields, "run_id": run_id, "created_at": created_at})
    return docs


def duplicate_doc(duplicate: Duplicate, quarantined: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The quarantine fields of a duplicate: its path, content, manifest subject and label, and the file analysed in its place.

    A duplicate of a file its run ``quarantined`` (that file's record) is a bad file too: it takes that record's stage,
    reason and error class, the reason naming the file.
    """
    listed = duplicate.ref.listing()
    if quarantined is None:
        return {**listed, "stage": DUPLICATE_STAGE, "reason": duplicate.reason}
    reason = f"{quarantined['reason']} (same content as {duplicate.first.path})"
    return {**listed, "stage": quarantined["stage"], "reason": reason, "error_class": quarantined.get("error_class")}


def persist_scored(stores: Stores, table: pa.Table, rejected: Sequence[dict[str, Any]], *, run_id: str, chunk_id: int, card: ModelCard) -> int:
    """Write one chunk everywhere it belongs; returns how many predictions were new.

    Order matters for a crash between steps: Parquet first (deduplicated on read), then MongoDB
    (the record of truth, idempotent through its unique index), then the Redis cache (best effort).
    """
    now = datetime.now(timezone.utc)
    if table.num_rows:
        # The table holds this code's FEATURE_NAMES, whatever feature version the scoring model was trained on.
        stores.features.write_chunk(table, feature_version=FEATURE_VERSION, run_id=run_id, chunk_id=chunk_id)
    docs = prediction_docs(table, run_id=run_id, card=card, created_at=now)
    stored = stores.results.store_predictions(docs) if docs else []
    if rejected:
        stores.results.insert_quarantine(quarantine_docs(rejected, run_id=run_id, created_at=now))
    if stored:
        # Only what this chunk stored: a prediction another run stored first is listed as that run stored it.
        stores.cache.put_many([{key: doc[key] for key in _CACHED_FIELDS} for doc in stored])
    return len(stored)
