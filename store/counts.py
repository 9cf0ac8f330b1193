"""Predictions, screen-positives and quarantined files per UTC quarter hour: the ``prediction_counts`` rollup.

The dashboard's per-day figures read these few documents instead of aggregating ``predictions`` (on
nx-27017 a date-ranged aggregation scans the whole collection). One document per quarter hour:
``_id`` its UTC start, ``predictions``, ``positives`` (score at or above the document's threshold, the
rule labels follow; a prediction without a threshold is not positive) and ``quarantined``. Every time zone's UTC offset is a multiple of 15 minutes, so the
buckets add up to exact local days in any time zone, half- and quarter-hour offsets included.

:class:`store.mongo.ResultStore` keeps it on every insert, counting only the documents actually inserted
(duplicates of stored predictions are skipped, so a rerun or a resumed drain adds nothing): one ``$inc``
upsert per quarter hour touched, and a chunk's documents share one timestamp. There is no transaction
around an insert and its count, so it can drift in rare failures: a process killed between the two, or a
connection lost mid-write (a retried insert counts what the lost attempt stored as already stored; a
retried ``$inc`` whose first attempt landed counts twice). It is derived data, so it is not backed up:
:func:`rebuild_counts` recomputes it from ``predictions`` and ``quarantine`` on restore, for a database
from before the rollup, or to repair such drift.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

COUNTS = "prediction_counts"
BUCKET = timedelta(minutes=15)
FIELDS = ("predictions", "positives", "quarantined")

_MINUTE = "%Y-%m-%dT%H:%M"
_NEVER = 2.0  # stands in for a missing threshold: above every score (in [0, 1])
Increments = dict[datetime, Counter]  # bucket start -> counts to add


def bucket_start(when: datetime) -> datetime:
    """The UTC start of the quarter hour holding ``when`` (a naive ``when`` is taken as UTC, as BSON stores it).

    Examples
    --------
    >>> bucket_start(datetime(2026, 11, 27, 9, 44, 59, tzinfo=timezone.utc)).isoformat()
    '2026-11-27T09:30:00+00:00'
    """
    utc = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)


def prediction_increments(docs: Iterable[Mapping[str, Any]]) -> Increments:
    """``predictions`` and ``positives`` to add per bucket for newly inserted prediction documents (those with ``created_at``)."""
    increments: Increments = defaultdict(Counter)
    for doc in _timed(docs):
        bucket = increments[bucket_start(doc["created_at"])]
        bucket["predictions"] += 1
        bucket["positives"] += int(doc.get("threshold") is not None and doc["score"] >= doc["threshold"])
    return increments


def quarantine_increments(docs: Iterable[Mapping[str, Any]]) -> Increments:
    """``quarantined`` to add per bucket for newly inserted quarantine records (those with ``created_at``)."""
    increments: Increments = defaultdict(Counter)
    for doc in _timed(docs):
        increments[bucket_start(doc["created_at"])]["quarantined"] += 1
    return increments


def _timed(docs: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    # A document without created_at belongs to no bucket, here as in rebuild_counts.
    return (doc for doc in docs if doc.get("created_at") is not None)


def add_counts(collection: Collection, increments: Increments) -> None:
    """Apply ``increments`` to the rollup ``collection``: one ``$inc`` upsert per bucket, in one round trip."""
    updates = [UpdateOne({"_id": bucket}, {"$inc": dict(counts)}, upsert=True) for bucket, counts in increments.items() if counts]
    if updates:
        collection.bulk_write(updates, ordered=False)


def rebuild_counts(db: Database) -> int:
    """Recompute the rollup from every document of ``predictions`` and ``quarantine``; returns the buckets written.

    Two aggregations grouped per minute (a few seconds per 100,000 predictions on nx-27017), folded into
    quarter hours here. Run it while nothing writes results: counts added meanwhile may be lost or doubled.
    """
    minute = {"$dateToString": {"format": _MINUTE, "date": "$created_at"}}
    predictions = db["predictions"].aggregate([{"$group": {
        "_id": minute, "predictions": {"$sum": 1}, "positives": {"$sum": {"$cond": [{"$gte": ["$score", {"$ifNull": ["$threshold", _NEVER]}]}, 1, 0]}},
    }}])
    quarantined = db["quarantine"].aggregate([{"$group": {"_id": minute, "quarantined": {"$sum": 1}}}])
    buckets: Increments = defaultdict(Counter)
    for row in [*predictions, *quarantined]:
        if row["_id"] is not None:  # documents without created_at belong to no bucket
            start = bucket_start(datetime.strptime(row["_id"], _MINUTE))
            buckets[start].update({name: int(row[name]) for name in FIELDS if name in row})
    db[COUNTS].drop()
    if buckets:
        db[COUNTS].insert_many([{"_id": start, **{name: counts[name] for name in FIELDS}} for start, counts in sorted(buckets.items())])
    return len(buckets)


def counts_missing(db: Database) -> bool:
    """True when ``db`` holds predictions or quarantine records but no rollup (from collection metadata, no scan)."""
    if db[COUNTS].estimated_document_count():
        return False
    return bool(db["predictions"].estimated_document_count() or db["quarantine"].estimated_document_count())
