"""MongoDB result store: predictions, quarantine and runs, written idempotently through pymongo."""

from __future__ import annotations

import logging
import re
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AbstractSet, Any, Callable, Iterable, Iterator, Sequence, TypeVar

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConfigurationError, ConnectionFailure, OperationFailure, PyMongoError

from store.counts import (
    COUNTS,
    DUPLICATE_STAGE,
    SCORES,
    SCORES_INDEX,
    Increments,
    ScoreIncrements,
    add_counts,
    add_score_counts,
    count_out,
    counts_missing,
    model_scores,
    prediction_increments,
    quarantine_increments,
    rebuild_counts,
    score_increments,
)
from store.times import utc_times
from voxflow.errors import DatabaseError

log = logging.getLogger(__name__)

T = TypeVar("T")

_DUPLICATE_KEY = 11000
# Server error codes of a refused user: unauthorised for the operation, or wrong credentials.
_UNAUTHORIZED = 13
_AUTHENTICATION_FAILED = 18
_LOOKUP_BATCH = 1000
# How a prediction's file was listed when it was scored (with the run that scored it).
LISTING_FIELDS = ("path", "subject_id", "reference_label", "run_id")
_STREAM_BATCH = 1000  # documents per round trip of a streamed read
# On nx-27017 a document looked up by content (1,000 hashes an $in) costs ~2.5 times one streamed by an indexed filter
# (bench/outcomes.py: 2.65 s against 1.02 s for 30,000 predictions).
_LOOKUP_COST = 2.5
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def connect_mongo(uri: str, *, timeout_ms: int = 5000) -> pymongo.MongoClient:
    """Open a pymongo client that gives up on an unreachable server after ``timeout_ms``.

    Datetimes come back timezone-aware (UTC).

    Raises
    ------
    DatabaseError
        When pymongo cannot use the URI as it opens the client: a ``mongodb+srv://`` name without DNS records.
    """
    try:
        return pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=True, appname="voxflow"
        )
    except ConfigurationError as exc:
        raise DatabaseError(f"MongoDB URI not usable: {exc}") from exc


@contextmanager
def open_database(uri: str, name: str) -> Iterator[Database]:
    """Database ``name`` on a client of its own, closed when the block ends.

    Left open, a client's monitor threads make pymongo's exit handler wait (~0.4 s per command).
    An unreachable server or a refused operation, anywhere in the block, ends it with one DatabaseError.
    """
    with connect_mongo(uri) as client, connection_errors_as_service_error(f"database {name}"):
        yield client[name]


def backoff_delays(budget_s: float, *, first_s: float = 0.2, factor: float = 2.0, max_delay_s: float = 5.0) -> list[float]:
    """Delays between retries: ``first_s`` growing by ``factor`` up to ``max_delay_s``, summing to at most ``budget_s``.

    Examples
    --------
    >>> backoff_delays(3.0)
    [0.2, 0.4, 0.8, 1.6]
    """
    delays: list[float] = []
    delay = first_s
    while sum(delays) + delay <= budget_s:
        delays.append(delay)
        delay = min(delay * factor, max_delay_s)
    return delays


def failure_reason(exc: Exception) -> str:
    """A pymongo error's message without its topology dump (the first clause names the host and the socket error)."""
    return str(exc).split(", Timeout:")[0]


def refuses_user(exc: OperationFailure) -> bool:
    """Whether ``exc`` says the server refused the configured user or its rights."""
    return exc.code in (_UNAUTHORIZED, _AUTHENTICATION_FAILED)


def server_message(exc: OperationFailure) -> str:
    """What the server said, without the rest of its reply (of a bulk write, its first write error)."""
    details = exc.details or {}
    first_write_error = (details.get("writeErrors") or [{}])[0]
    return details.get("errmsg") or first_write_error.get("errmsg") or str(exc)


def _refusal(exc: OperationFailure, what: str) -> DatabaseError:
    """The one-line error of an operation the server answered with no: the configured user or its rights (the URI
    to fix), or the operation itself (a full disk, a document too large)."""
    if refuses_user(exc):
        return DatabaseError(f"MongoDB refused the configured user ({what}): {server_message(exc)}; check the user and password of the MongoDB URI")
    return DatabaseError(f"MongoDB refused an operation ({what}): {server_message(exc)}")


def _refused(exc: Exception, what: str) -> DatabaseError | None:
    """The one-line error of ``exc`` if the server answered no (an operation refused, a login it does not support)."""
    return _refusal(exc, what) if isinstance(exc, OperationFailure) else login_not_understood(exc, what)


def login_not_understood(exc: Exception, what: str) -> DatabaseError | None:
    """The one-line error of a login pymongo could not complete because it could not read the server's answer
    (a server without auth, such as nx-27017, answers SCRAM's first step without its ``payload``: pymongo's
    KeyError), naming the server but none of the URI's secrets; None for an error raised anywhere else."""
    if isinstance(exc, PyMongoError):
        return None
    modules = [(frame, frame.f_globals.get("__name__", "")) for frame, _ in traceback.walk_tb(exc.__traceback__)]
    login = [frame for frame, module in modules if module.startswith("pymongo.") and "auth" in module.rsplit(".", 1)[-1]]
    if not login:
        return None
    address = getattr(login[-1].f_locals.get("conn"), "address", None)
    server = "%s:%s" % address if address else "the server"
    return DatabaseError(
        f"MongoDB at {server} refused authentication (the server may not support auth): its answer to the login lacks {exc} ({what}); "
        "remove the user and password from the MongoDB URI, or enable auth on the server"
    )


def listed_query(paths: AbstractSet[str], subjects: AbstractSet[str], folders: AbstractSet[str] = frozenset()) -> dict[str, Any] | None:
    """The query of the documents stored under one of ``paths``, ``subjects`` or ``folders`` (each ending in a slash:
    a path that starts with one); None when all are empty."""
    clauses = [{field: {"$in": sorted(values)}} for field, values in (("path", paths), ("subject_id", subjects)) if values]
    clauses += [{"path": {"$regex": "^" + re.escape(folder)}} for folder in sorted(folders)]
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$or": clauses}


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`ResultStore.forget` deleted (or found): predictions, quarantine records, the models that made the
    predictions, and the contents and paths they were of."""

    predictions: int
    quarantine: int
    model_versions: tuple[str, ...]
    hashes: frozenset[str]
    paths: frozenset[str]
    # The ``_id`` of the quarantine records without a content hash (files that could not be read): what a restore
    # must delete again by ``_id``, as it finds the others by their content (:func:`tasks.erasure.erase_again`).
    unhashed_quarantine: frozenset[Any] = frozenset()


Identity = tuple[str | None, str | None, str | None]  # audio_sha256, path, subject_id: whose recording a document is
IDENTITY_FIELDS = ("audio_sha256", "path", "subject_id")


def identity(doc: dict[str, Any]) -> Identity:
    """A document's :data:`Identity`, None for a field it lacks.

    Examples
    --------
    >>> identity({"audio_sha256": "ab", "path": "/a.wav", "score": 0.5})
    ('ab', '/a.wav', None)
    """
    return doc.get("audio_sha256"), doc.get("path"), doc.get("subject_id")


def _quarantine_query(run_id: str | None, stage: str | None) -> dict[str, str]:
    return {key: value for key, value in (("run_id", run_id), ("stage", stage)) if value is not None}


def _retrying(what: str, operation: Callable[[], T], *, budget_s: float) -> T:
    """Run ``operation``, retrying with backoff while MongoDB is unreachable, for about ``budget_s``."""
    began = time.monotonic()
    delays = iter(backoff_delays(budget_s))
    attempt = 1
    while True:
        try:
            return operation()
        except ConnectionFailure as exc:
            elapsed = time.monotonic() - began
            delay = next(delays, None)
            if delay is None or elapsed + delay > budget_s:
                raise DatabaseError(f"MongoDB unreachable after {elapsed:.0f} s ({what}): {failure_reason(exc)}") from exc
            log.warning("MongoDB unreachable (%s): %s; retry %d in %.1f s", what, failure_reason(exc), attempt, delay)
            time.sleep(delay)
            attempt += 1
        except Exception as exc:  # not retried: no connection error
            if (refused := _refused(exc, what)) is None:
                raise
            raise refused from exc


@contextmanager
def connection_errors_as_service_error(what: str) -> Iterator[None]:
    """Database work that cannot be retried where it stands (a cursor half read, a command's whole block): one clear error, at once."""
    try:
        yield
    except ConnectionFailure as exc:
        raise DatabaseError(f"MongoDB unreachable ({what}): {failure_reason(exc)}") from exc
    except Exception as exc:
        if (refused := _refused(exc, what)) is None:
            raise
        raise refused from exc


def _insert_new(collection: Collection, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert ``docs`` unordered; returns those stored by this call, leaving out duplicates of documents stored before it.

    A duplicate whose ``_id`` is stored was stored by an earlier attempt of this call that failed after the
    server applied it, so it counts as stored here: ``docs`` come without ``_id``, pymongo gives each a new
    ObjectId on the first attempt, and a retry resends them.
    """
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        details = exc.details
        if details.get("writeConcernErrors") or any(e.get("code") != _DUPLICATE_KEY for e in details["writeErrors"]):
            raise
        duplicates = {e["index"] for e in details["writeErrors"]}
        ours = _stored_ids(collection, [docs[i]["_id"] for i in duplicates])
        return [doc for i, doc in enumerate(docs) if i not in duplicates or doc["_id"] in ours]
    return docs


def _stored_ids(collection: Collection, ids: list[Any]) -> set[Any]:
    """Those of ``ids`` that ``collection`` holds."""
    return {doc["_id"] for doc in collection.find({"_id": {"$in": ids}}, {"_id": 1})}


@dataclass(frozen=True)
class PredictionFilter:
    """Which predictions to read: every field given must match (None matches anything)."""

    run_id: str | None = None
    label: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    model_version: str | None = None
    subject_id: str | None = None

    def query(self) -> dict[str, Any]:
        """The MongoDB query."""
        query: dict[str, Any] = {}
        if self.run_id is not None:
            query["run_id"] = self.run_id
        if self.subject_id is not None:
            query["subject_id"] = self.subject_id
        if self.label is not None:
            query["label"] = self.label
        if self.model_version is not None:
            query["model_version"] = self.model_version
        score = {op: bound for op, bound in (("$gte", self.min_score), ("$lte", self.max_score)) if bound is not None}
        if score:
            query["score"] = score
        return query


class ResultStore:
    """Predictions, quarantine records and run documents in one MongoDB database.

    Every prediction and quarantine record inserted is also counted in the ``prediction_counts`` and
    ``score_counts`` rollups (:mod:`store.counts`, which says when they can drift), whichever flow writes it.

    Parameters
    ----------
    db : pymongo.database.Database
        The voxflow database (``client[settings.mongo_db]``).
    retry_s : float
        How long writes retry while the server is unreachable (``settings.mongo_retry_s``).
    """

    def __init__(self, db: Database, *, retry_s: float = 30.0) -> None:
        self._predictions = db["predictions"]
        self._quarantine = db["quarantine"]
        self._runs = db["runs"]
        self._scaling_events = db["scaling_events"]
        self._counts = db[COUNTS]
        self._scores = db[SCORES]
        self._db = db
        self._retry_s = retry_s

    def ensure_indexes(self) -> None:
        """Create the indexes, among them the unique (audio_sha256, model_version) that makes writes idempotent."""

        def create() -> None:
            asc, desc = pymongo.ASCENDING, pymongo.DESCENDING
            self._predictions.create_index([("audio_sha256", asc), ("model_version", asc)], unique=True)
            for key in ("run_id", "score", "label", "model_version", "subject_id"):  # the unique index leads with audio_sha256: no use to these filters
                self._predictions.create_index([(key, asc)])
            self._predictions.create_index([("created_at", desc)])
            self._quarantine.create_index([("run_id", asc)])
            self._quarantine.create_index([("audio_sha256", asc)])
            self._runs.create_index([("run_id", asc)], unique=True)
            self._runs.create_index([("started_at", desc)])
            self._scaling_events.create_index([("time", desc)])
            self._scores.create_index(SCORES_INDEX)

        _retrying("create indexes", create, budget_s=self._retry_s)

    def ensure_counts(self) -> bool:
        """Rebuild the rollups when results exist without them (a database from before them); True if rebuilt."""
        if not _retrying("check the counts", lambda: counts_missing(self._db), budget_s=self._retry_s):
            return False
        buckets = _retrying("rebuild the counts", lambda: rebuild_counts(self._db), budget_s=self._retry_s)
        log.info("rebuilt %s and %s from the stored results: %d quarter hours", COUNTS, SCORES, buckets)
        return True

    def stored_listings(self, hashes: Iterable[str], model_version: str) -> dict[str, dict[str, Any]]:
        """How each of ``hashes`` that ``model_version`` already scored was listed then (looked up 1,000 at a time).

        Returns
        -------
        dict
            ``audio_sha256`` -> its prediction's ``path``, ``subject_id``, ``reference_label`` and ``run_id``.
        """
        docs = self._of_contents(self._predictions, hashes, {"model_version": model_version}, LISTING_FIELDS, "look up known hashes")
        return {doc.pop("audio_sha256"): doc for doc in docs}

    def quarantined_in_run(self, run_id: str, hashes: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """The quarantine records of ``run_id`` for files of these contents (looked up 1,000 at a time), duplicates' left out.

        Returns
        -------
        dict
            (``path``, ``audio_sha256``) -> the record's ``stage``, ``reason`` and ``error_class``.
        """
        query = {"run_id": run_id, "stage": {"$ne": DUPLICATE_STAGE}}
        docs = self._of_contents(self._quarantine, hashes, query, ("path", "stage", "reason", "error_class"), "look up quarantined files")
        return {(doc.pop("path"), doc.pop("audio_sha256")): doc for doc in docs}

    def _of_contents(self, collection: Collection, hashes: Iterable[str], query: dict[str, Any], fields: Sequence[str], what: str) -> list[dict[str, Any]]:
        """The documents of ``collection`` matching ``query`` whose ``audio_sha256`` is one of ``hashes`` (looked up
        1,000 at a time), with ``audio_sha256`` and ``fields`` only."""
        unique = list(dict.fromkeys(hashes))
        projection = {"_id": 0, **dict.fromkeys(("audio_sha256", *fields), 1)}
        docs: list[dict[str, Any]] = []
        for start in range(0, len(unique), _LOOKUP_BATCH):
            batch = {"audio_sha256": {"$in": unique[start : start + _LOOKUP_BATCH]}, **query}
            docs += _retrying(what, lambda: list(collection.find(batch, projection)), budget_s=self._retry_s)
        return docs

    def insert_predictions(self, docs: Sequence[dict[str, Any]]) -> int:
        """Insert predictions; ones already stored for the same (audio_sha256, model_version) are skipped.

        Returns
        -------
        int
            How many this call stored (and counted in the rollups), those of an attempt that failed after
            the server applied them included.
        """
        return len(self.store_predictions(docs))

    def store_predictions(self, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`insert_predictions`, returning the documents this call stored rather than their number."""
        inserted = self._insert(self._predictions, docs)
        self._count(prediction_increments(inserted), score_increments(inserted))
        return inserted

    def insert_quarantine(self, docs: Sequence[dict[str, Any]]) -> int:
        """Insert quarantine records (one per rejected file per run, each with ``created_at``); returns how many were written."""
        inserted = self._insert(self._quarantine, docs)
        self._count(quarantine_increments(inserted))
        return len(inserted)

    def listed_under(
        self, *, paths: AbstractSet[str] = frozenset(), subjects: AbstractSet[str] = frozenset(), folders: AbstractSet[str] = frozenset()
    ) -> set[Identity]:
        """(``audio_sha256``, ``path``, ``subject_id``) of the predictions and quarantine records stored under one of
        ``paths``, ``subjects`` or ``folders``."""
        query = listed_query(paths, subjects, folders)
        if query is None:
            return set()
        found: set[Identity] = set()
        for collection in (self._predictions, self._quarantine):
            docs = _retrying(f"read {collection.name}", lambda: list(collection.find(query, dict.fromkeys(IDENTITY_FIELDS, 1))), budget_s=self._retry_s)
            found |= {identity(doc) for doc in docs}
        return found

    def forget(
        self, *, hashes: AbstractSet[str], paths: AbstractSet[str] = frozenset(), subjects: AbstractSet[str] = frozenset(),
        folders: AbstractSet[str] = frozenset(), quarantine_ids: AbstractSet[Any] = frozenset(), dry_run: bool = False,
    ) -> Forgotten:
        """Delete the predictions and quarantine records of these contents, or stored under these paths, subjects or
        folders (:func:`listed_query`), and the quarantine records of these ``_id`` (:attr:`Forgotten.unhashed_quarantine`
        of an earlier forget), and take them out of the rollups (deleted, then counted out: a process killed in between
        leaves the rollups high, which ``voxflow counts rebuild`` repairs).

        Parameters
        ----------
        dry_run : bool
            Find them only; delete nothing.
        """
        unique, ids = sorted(set(hashes)), list(quarantine_ids)
        listed = listed_query(paths, subjects, folders)
        queries = [] if listed is None else [listed]
        queries += [{"audio_sha256": {"$in": unique[start : start + _LOOKUP_BATCH]}} for start in range(0, len(unique), _LOOKUP_BATCH)]
        by_id = [{"_id": {"$in": ids[start : start + _LOOKUP_BATCH]}} for start in range(0, len(ids), _LOOKUP_BATCH)]
        deleted: dict[str, dict[Any, dict[str, Any]]] = {"predictions": {}, "quarantine": {}}
        fields = dict.fromkeys(("_id", "audio_sha256", "path", "created_at", "score", "threshold", "model_version", "stage"), 1)
        for collection, extra in ((self._predictions, []), (self._quarantine, by_id)):
            for query in queries + extra:
                docs = _retrying(f"read {collection.name}", lambda: list(collection.find(query, fields)), budget_s=self._retry_s)
                found = {doc["_id"]: doc for doc in docs if doc["_id"] not in deleted[collection.name]}
                if found and not dry_run:
                    ids = {"_id": {"$in": list(found)}}
                    _retrying(f"delete from {collection.name}", lambda: collection.delete_many(ids), budget_s=self._retry_s)
                deleted[collection.name].update(found)
        predictions, quarantine = (list(deleted[name].values()) for name in ("predictions", "quarantine"))
        if not dry_run:
            _retrying("count out of the rollups", lambda: count_out(self._db, predictions, quarantine), budget_s=self._retry_s)
        return Forgotten(
            len(predictions), len(quarantine), tuple(sorted({doc["model_version"] for doc in predictions if doc.get("model_version")})),
            frozenset(doc["audio_sha256"] for doc in (*predictions, *quarantine) if doc.get("audio_sha256")),
            frozenset(doc["path"] for doc in (*predictions, *quarantine) if doc.get("path")),
            frozenset(doc["_id"] for doc in quarantine if not doc.get("audio_sha256")),
        )

    def insert_scaling_event(self, event: dict[str, Any]) -> None:
        """Record a change in the worker count (time, workers before/after, backlog, reason, recommendation)."""
        self._insert(self._scaling_events, [event])

    def find_scaling_events(self, *, run_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Scaling events, of one run or all, newest first, without ``_id``."""
        query = {"run_id": run_id} if run_id is not None else {}
        return self._find(self._scaling_events, query, sort_key="time", limit=limit)

    def start_run(self, run: dict[str, Any]) -> None:
        """Record a run as started (``run_id``, ``status`` "running", ``started_at``...); repeating it is harmless."""
        self._insert(self._runs, [run])

    def finish_run(self, run_id: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` (status, counts, timings...) on the run document."""
        result = _retrying(
            f"finish run {run_id}",
            lambda: self._runs.update_one({"run_id": run_id}, {"$set": fields}),
            budget_s=self._retry_s,
        )
        if result.matched_count == 0:
            log.warning("finish_run: no run document for run_id %s", run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        """Set a run's status while it runs: "paused" (a drain that lets a forget go first) or "running" again."""
        self.finish_run(run_id, {"status": status})

    def running_runs(self, host: str | None = None, *, paused: bool = False) -> list[dict[str, Any]]:
        """Run documents still "running" (or "paused" too, with ``paused``) that a process on ``host`` started (any
        host's when None), oldest first, without ``_id``."""
        query: dict[str, Any] = {"status": {"$in": ["running", "paused"]} if paused else "running"}
        if host is not None:
            query["host"] = host

        def find() -> list[dict[str, Any]]:
            return list(self._runs.find(query, {"_id": 0}).sort([("started_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]))

        return _retrying("read runs", find, budget_s=self._retry_s)

    def stored_counts(self, run_id: str) -> dict[str, int]:
        """How many predictions, quarantined files and duplicates' records carry ``run_id``: a run summary's counts of them."""
        def count() -> dict[str, int]:
            of_run = {"run_id": run_id}
            return {
                "scored": self._predictions.count_documents(of_run),
                "quarantined": self._quarantine.count_documents({**of_run, "stage": {"$ne": DUPLICATE_STAGE}}),
                "duplicates": self._quarantine.count_documents({**of_run, "stage": DUPLICATE_STAGE}),
            }

        return _retrying(f"count run {run_id}", count, budget_s=self._retry_s)

    def find_predictions(self, where: PredictionFilter = PredictionFilter(), *, limit: int = 100) -> list[dict[str, Any]]:
        """Predictions matching ``where``, newest first, without ``_id``."""
        return self._find(self._predictions, where.query(), sort_key="created_at", limit=limit)

    def iter_predictions(self, where: PredictionFilter = PredictionFilter(), *, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every prediction matching ``where`` (up to ``limit``), in the order stored, read in batches, without ``_id``."""
        return self._stream(self._predictions, where.query(), limit=limit)

    def scored_since(self, model_version: str, since: datetime) -> list[str]:
        """The content hashes ``model_version`` scored (predictions stored) since ``since``."""
        query = {"model_version": model_version, "created_at": {"$gte": since}}
        return _retrying("read predictions", lambda: [doc["audio_sha256"] for doc in self._predictions.find(query, {"_id": 0, "audio_sha256": 1})], budget_s=0)

    def scores_of(self, model_version: str, hashes: Iterable[str], *, since: datetime | None = None) -> list[dict[str, Any]]:
        """``model_version``'s predictions of these contents (stored since ``since``, if given): ``audio_sha256``,
        ``score``, ``label`` and ``created_at`` each.

        Read whichever way costs less: the contents looked up 1,000 at a time, or every prediction of the model streamed
        and those of ``hashes`` kept, when the ``score_counts`` rollup says the model has fewer than
        :data:`_LOOKUP_COST` times as many predictions as there are contents to look up.
        """
        wanted = set(hashes)
        query: dict[str, Any] = {"model_version": model_version, **({} if since is None else {"created_at": {"$gte": since}})}
        fields = ("score", "label", "created_at")
        bins, _ = _retrying("read score counts", lambda: model_scores(self._db, since or _EPOCH, model_version), budget_s=self._retry_s)
        if sum(bins) >= _LOOKUP_COST * len(wanted):
            return self._of_contents(self._predictions, wanted, query, fields, "read predictions")
        projection = {"_id": 0, **dict.fromkeys(("audio_sha256", *fields), 1)}
        return [doc for doc in self._stream(self._predictions, query, limit=None, projection=projection) if doc["audio_sha256"] in wanted]

    def scored_by(self, model_version: str) -> bool:
        """Whether any stored prediction was made by ``model_version``."""
        return _retrying("read predictions", lambda: self._predictions.find_one({"model_version": model_version}, {"_id": 1}) is not None, budget_s=0)

    def find_quarantine(self, *, run_id: str | None = None, stage: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Quarantine records, of one run or all, of one stage or all, newest first, without ``_id``."""
        return self._find(self._quarantine, _quarantine_query(run_id, stage), sort_key="created_at", limit=limit)

    def iter_quarantine(self, *, run_id: str | None = None, stage: str | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every quarantine record, of one run or all, of one stage or all (up to ``limit``), in the order stored, read in batches, without ``_id``."""
        return self._stream(self._quarantine, _quarantine_query(run_id, stage), limit=limit)

    def find_runs(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """Run documents, most recently started first, without ``_id``, their times as UTC datetimes."""
        return [utc_times(doc, ("started_at", "finished_at")) for doc in self._find(self._runs, {}, sort_key="started_at", limit=limit)]

    def find_run(self, run_id: str) -> dict[str, Any] | None:
        """The document of run ``run_id``, without ``_id``; None when there is none."""
        return _retrying("read runs", lambda: self._runs.find_one({"run_id": run_id}, {"_id": 0}), budget_s=0)

    def run_ids(self, prefix: str, *, limit: int) -> list[str]:
        """Ids of the runs whose id starts with ``prefix``, in order (``prefix`` itself first when it is one), at most ``limit``."""
        def find() -> list[str]:
            cursor = self._runs.find({"run_id": {"$regex": f"^{re.escape(prefix)}"}}, {"_id": 0, "run_id": 1})
            return [doc["run_id"] for doc in cursor.sort("run_id", pymongo.ASCENDING).limit(limit)]

        return _retrying("read runs", find, budget_s=0)

    def _count(self, increments: Increments, scores: ScoreIncrements | None = None) -> None:
        if increments:
            _retrying(f"count into {COUNTS}", lambda: add_counts(self._counts, increments), budget_s=self._retry_s)
        if scores:
            _retrying(f"count into {SCORES}", lambda: add_score_counts(self._scores, scores), budget_s=self._retry_s)

    def _insert(self, collection: Collection, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if not docs:
            return []
        # pymongo sets _id on what it inserts: copy once, so the caller's dicts stay clean and a retry
        # resends the same _ids, which the server reports as duplicates instead of storing twice.
        copies = [dict(doc) for doc in docs]
        return _retrying(
            f"insert {len(copies)} into {collection.name}",
            lambda: _insert_new(collection, copies),
            budget_s=self._retry_s,
        )

    def _stream(
        self, collection: Collection, query: dict[str, Any], *, limit: int | None, projection: dict[str, int] | None = None
    ) -> Iterator[dict[str, Any]]:
        # No sort: a sorted read would hold every match at once (and nx-27017 reads the whole range to sort it).
        cursor = collection.find(query, projection or {"_id": 0}, batch_size=_STREAM_BATCH, limit=limit or 0)
        with connection_errors_as_service_error(f"read {collection.name}"):
            yield from cursor

    def _find(self, collection: Collection, query: dict[str, Any], *, sort_key: str, limit: int) -> list[dict[str, Any]]:
        def find() -> list[dict[str, Any]]:
            cursor = collection.find(query, {"_id": 0}).sort([(sort_key, pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
            return list(cursor.limit(limit))

        # Reads serve people waiting at a prompt: fail at once rather than retry.
        return _retrying(f"read {collection.name}", find, budget_s=0)
