"""Rollups kept as results are stored, per UTC quarter hour: ``prediction_counts`` and ``score_counts``.

``prediction_counts``: predictions, screen-positives and quarantined files (not the records of duplicates, see
:data:`DUPLICATE_STAGE`). ``score_counts``: one document
per quarter hour and model version (``t``, the bucket's start in Unix seconds, ``model_version``,
``positives`` and ``b00``...``b09``, the clips per tenth of the score range), which the dashboard's
score-drift histogram reads. Its ``_id`` and ``t`` avoid date-like strings and ``$set`` datetimes, which
nx-27017 mishandles in upserts.

The dashboard's per-day figures read these few documents instead of aggregating ``predictions`` (on
nx-27017 a date-ranged aggregation scans the whole collection). One document per quarter hour:
``_id`` its UTC start, ``predictions``, ``positives`` (score at or above the document's threshold, the
rule labels follow; a prediction without a threshold is not positive) and ``quarantined``. Every time zone's UTC offset is a multiple of 15 minutes, so the
buckets add up to exact local days in any time zone, half- and quarter-hour offsets included.

:class:`store.mongo.ResultStore` keeps it on every insert, counting only the documents actually inserted
(duplicates of stored predictions are skipped, so a rerun or a resumed drain adds nothing; what an insert's
failed attempt stored before its retry is counted once): one ``$inc`` upsert per quarter hour touched, and
a chunk's documents share one timestamp. There is no transaction around an insert and its count, so it can
drift in rare failures: a process killed or interrupted between the two leaves what it inserted uncounted,
and a retried ``$inc`` whose first attempt landed counts twice. Nothing notices such drift by itself (a crashed
run is closed without a recount, and ``ResultStore.ensure_counts`` rebuilds only a rollup missing entirely).
It is derived data, so it is not backed up: :func:`rebuild_counts` recomputes it from ``predictions`` and
``quarantine`` on restore and for a database from before the rollup; called while nothing writes results,
it repairs such drift too. ``voxflow counts rebuild`` runs it for an operator after a crash: it closes the
abandoned runs first, refuses while any run is still "running" (unless ``--force``), and reports what
changed (:func:`read_rollups`, :func:`rollup_changes`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

COUNTS = "prediction_counts"
SCORES = "score_counts"
BUCKET = timedelta(minutes=15)
FIELDS = ("predictions", "positives", "quarantined")
# The quarantine stage of a file with the same content as another file of its run, analysed in its place: the record
# names the file, which is no bad input, so it is counted as a run's duplicate, never as quarantined.
DUPLICATE_STAGE = "duplicate"
SCORE_BINS = 10
SCORES_INDEX = [("model_version", 1), ("t", 1)]  # the dashboard's score-drift query: one model, from a time on
BIN_FIELDS = tuple(f"b{i:02d}" for i in range(SCORE_BINS))

SCORE_FIELDS = ("positives", *BIN_FIELDS)
ROLLUP_FIELDS = {COUNTS: FIELDS, SCORES: SCORE_FIELDS}  # what each rollup counts, per document

Increments = dict[datetime, Counter]  # bucket start -> counts to add
ScoreIncrements = dict[tuple[datetime, str], Counter]  # (bucket start, model version) -> counts to add
Rollups = dict[str, dict[Any, tuple[int, ...]]]  # rollup name -> document _id -> its ROLLUP_FIELDS
_READ_BATCH = 5_000
K = TypeVar("K")


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
        bucket["positives"] += _positive(doc)
    return increments


def score_bin(score: float) -> str:
    """The ``score_counts`` field of the bin holding ``score`` in [0, 1]; 1.0 falls in the top bin.

    Examples
    --------
    >>> score_bin(0.0), score_bin(0.349), score_bin(1.0)
    ('b00', 'b03', 'b09')
    """
    return BIN_FIELDS[min(max(int(score * SCORE_BINS), 0), SCORE_BINS - 1)]


def score_increments(docs: Iterable[Mapping[str, Any]]) -> ScoreIncrements:
    """Clips per score bin, and screen-positives, to add per bucket and model for newly inserted predictions."""
    increments: ScoreIncrements = defaultdict(Counter)
    for doc in _timed(docs):
        counts = increments[(bucket_start(doc["created_at"]), doc["model_version"])]
        counts[score_bin(doc["score"])] += 1
        counts["positives"] += _positive(doc)
    return increments


def _positive(doc: Mapping[str, Any]) -> int:
    """1 when the prediction is screen-positive by its own threshold (the rule its label follows)."""
    return int(doc.get("threshold") is not None and doc["score"] >= doc["threshold"])


def quarantine_increments(docs: Iterable[Mapping[str, Any]]) -> Increments:
    """``quarantined`` to add per bucket for newly inserted quarantine records (those with ``created_at``), a duplicate's left out."""
    increments: Increments = defaultdict(Counter)
    for doc in _timed(docs):
        if doc.get("stage") != DUPLICATE_STAGE:
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


def add_score_counts(collection: Collection, increments: ScoreIncrements) -> None:
    """Apply ``increments`` to the ``score_counts`` ``collection``: one ``$inc`` upsert per bucket and model."""
    updates = [
        UpdateOne({"_id": _score_id(start, model)}, {"$inc": dict(counts), "$set": {"t": _epoch(start), "model_version": model}}, upsert=True)
        for (start, model), counts in increments.items() if counts
    ]
    if updates:
        collection.bulk_write(updates, ordered=False)


def count_out(db: Database, predictions: Sequence[Mapping[str, Any]], quarantine: Sequence[Mapping[str, Any]]) -> None:
    """Take deleted prediction and quarantine documents out of both rollups; a rollup document left counting nothing
    is deleted, as :func:`rebuild_counts` would not have written it."""
    buckets = prediction_increments(predictions)
    for start, counts in quarantine_increments(quarantine).items():
        buckets[start].update(counts)
    scores = score_increments(predictions)
    add_counts(db[COUNTS], _negated(buckets))
    add_score_counts(db[SCORES], _negated(scores))
    for name, ids in ((COUNTS, list(buckets)), (SCORES, [_score_id(start, model) for start, model in scores])):
        emptied = [doc["_id"] for doc in db[name].find({"_id": {"$in": ids}}) if not any(doc.get(field) for field in ROLLUP_FIELDS[name])]
        if emptied:
            db[name].delete_many({"_id": {"$in": emptied}})


def _negated(increments: Mapping[K, Counter]) -> dict[K, Counter]:
    """``increments`` that take away what they would add.

    Examples
    --------
    >>> _negated({"m1": Counter(predictions=2, positives=1)})
    {'m1': Counter({'positives': -1, 'predictions': -2})}
    """
    return {key: Counter({name: -n for name, n in counts.items()}) for key, counts in increments.items()}


def _score_id(start: datetime, model_version: str) -> str:
    return f"{model_version}|{_epoch(start)}"


def _epoch(start: datetime) -> int:
    return int(start.timestamp())


def model_scores(db: Database, since: datetime, model_version: str) -> tuple[list[int], int]:
    """Clips per score bin (``SCORE_BINS`` of them) and screen-positives of ``model_version`` from the quarter hour of ``since`` on."""
    bins, positives = [0] * SCORE_BINS, 0
    for doc in db[SCORES].find({"model_version": model_version, "t": {"$gte": _epoch(bucket_start(since))}}):
        bins = [n + int(doc.get(name, 0)) for n, name in zip(bins, BIN_FIELDS)]
        positives += int(doc.get("positives", 0))
    return bins, positives


def rebuild_counts(db: Database) -> int:
    """Recompute both rollups from every document of ``predictions`` and ``quarantine``; returns the quarter hours written.

    One streamed pass over each collection (only the fields counted), through the same increment functions
    as live inserts: ~10 s per 100,000 predictions on nx-27017. Run it while nothing writes results:
    counts added meanwhile may be lost or doubled. ``score_counts`` gets its index back (dropping it dropped the index).
    """
    buckets: Increments = defaultdict(Counter)
    scores: ScoreIncrements = defaultdict(Counter)
    fields = {"_id": 0, "created_at": 1, "score": 1, "threshold": 1, "model_version": 1}
    for batch in _batches(db["predictions"].find({}, fields, batch_size=_READ_BATCH)):
        for start, counts in prediction_increments(batch).items():
            buckets[start].update(counts)
        for key, counts in score_increments(batch).items():
            scores[key].update(counts)
    for batch in _batches(db["quarantine"].find({}, {"_id": 0, "created_at": 1, "stage": 1}, batch_size=_READ_BATCH)):
        for start, counts in quarantine_increments(batch).items():
            buckets[start].update(counts)
    db[COUNTS].drop()
    db[SCORES].drop()
    if buckets:
        db[COUNTS].insert_many([{"_id": start, **{name: counts[name] for name in FIELDS}} for start, counts in sorted(buckets.items())])
    if scores:
        db[SCORES].insert_many([
            {"_id": _score_id(start, model), "t": _epoch(start), "model_version": model, "positives": counts["positives"], **{name: counts[name] for name in BIN_FIELDS}}
            for (start, model), counts in sorted(scores.items())
        ])
    db[SCORES].create_index(SCORES_INDEX)
    return len(buckets)


def _batches(cursor: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for doc in cursor:
        batch.append(doc)
        if len(batch) == _READ_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def read_rollups(db: Database) -> Rollups:
    """Both rollups as stored: per rollup, each document's ``_id`` -> its :data:`ROLLUP_FIELDS` (a missing field as 0).

    Small: one document per quarter hour (and model), ~35,000 a year per model.
    """
    return {name: {doc["_id"]: tuple(int(doc.get(field, 0)) for field in fields) for doc in db[name].find()} for name, fields in ROLLUP_FIELDS.items()}


def rollup_totals(name: str, documents: Mapping[Any, tuple[int, ...]]) -> dict[str, int]:
    """A rollup's totals: ``prediction_counts``' predictions, positives and quarantined; ``score_counts``' clips (its bins) and positives.

    Examples
    --------
    >>> rollup_totals(COUNTS, {"9:00": (3, 1, 2), "9:15": (4, 0, 0)})
    {'predictions': 7, 'positives': 1, 'quarantined': 2}
    >>> rollup_totals(SCORES, {"m1|0": (1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3)})
    {'clips': 5, 'positives': 1}
    """
    sums = [sum(column) for column in zip(*documents.values())] or [0] * len(ROLLUP_FIELDS[name])
    if name == SCORES:
        return {"clips": sum(sums[1:]), "positives": sums[0]}
    return dict(zip(ROLLUP_FIELDS[name], sums))


def rollup_changes(before: Rollups, after: Rollups) -> dict[str, dict[str, Any]]:
    """Per rollup, what a rebuild changed: its ``documents`` after, how many documents ``changed`` (one that
    appeared or went away reads as zeros where it is missing), and its totals ``before`` and ``after``.

    Examples
    --------
    >>> before = {COUNTS: {"9:00": (3, 1, 0), "9:15": (2, 0, 0)}, SCORES: {}}
    >>> after = {COUNTS: {"9:00": (3, 1, 0), "9:15": (4, 1, 0)}, SCORES: {"m1|0": (1,) + (0,) * 9 + (4,)}}
    >>> rollup_changes(before, after)[COUNTS]
    {'documents': 2, 'changed': 1, 'before': {'predictions': 5, 'positives': 1, 'quarantined': 0},
     'after': {'predictions': 7, 'positives': 2, 'quarantined': 0}}
    >>> rollup_changes(before, after)[SCORES]["changed"]
    1
    """
    changes = {}
    for name, fields in ROLLUP_FIELDS.items():
        old, new, zeros = before.get(name, {}), after.get(name, {}), (0,) * len(fields)
        changed = sum(1 for key in old.keys() | new.keys() if old.get(key, zeros) != new.get(key, zeros))
        changes[name] = {"documents": len(new), "changed": changed, "before": rollup_totals(name, old), "after": rollup_totals(name, new)}
    return changes


def counts_missing(db: Database) -> bool:
    """True when ``db`` holds results that a rollup lacks entirely (from collection metadata, no scan)."""
    predictions = db["predictions"].estimated_document_count()
    if predictions and not db[SCORES].estimated_document_count():
        return True
    return bool((predictions or db["quarantine"].estimated_document_count()) and not db[COUNTS].estimated_document_count())
