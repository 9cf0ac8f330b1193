"""The ``erasures`` collection: one record per ``voxflow forget`` (when, where, how many), with the contents it
erased, so that restoring a backup taken before it erases them again.

A record names no path and no subject: only the content hashes (sha256 of the audio bytes, from which no audio
can be recovered) of the recordings erased, the ``_id`` of the quarantine records of files that could not be read
(which have no content hash; an ObjectId holds a time and counters, nothing of the file), the counts and the host. Like the ``backups`` catalogue, a restore
merges it, never rolls it back with the data (:mod:`store.backup`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pymongo
from pymongo.database import Database

ERASURES = "erasures"
HASHES_PER_RECORD = 50_000  # ~3.5 MB of hashes, well under MongoDB's 16 MB document limit


def record_erasure(db: Database, record: Mapping[str, Any], hashes: Iterable[str], quarantine_ids: Iterable[Any] = ()) -> None:
    """Insert the record of one erasure: ``record`` (counts, time, host), with ``hashes`` and the ``_id`` of the
    quarantine records it erased that had no content hash (files that could not be read) spread over as many documents
    as they need (each a copy of ``record`` and its ``part``)."""
    unique, ids = sorted(set(hashes)), sorted(set(quarantine_ids))
    n_parts = max(1, -(-len(unique) // HASHES_PER_RECORD), -(-len(ids) // HASHES_PER_RECORD))
    db[ERASURES].insert_many([
        {**record, "part": part, "hashes": unique[part * HASHES_PER_RECORD : (part + 1) * HASHES_PER_RECORD],
         "quarantine_ids": ids[part * HASHES_PER_RECORD : (part + 1) * HASHES_PER_RECORD]}
        for part in range(n_parts)
    ])


def erased_contents(db: Database) -> set[str]:
    """Every content hash an erasure recorded in ``db`` erased."""
    return {sha for doc in db[ERASURES].find({}, {"_id": 0, "hashes": 1}) for sha in doc.get("hashes", ())}


def erased_quarantine_ids(db: Database) -> set[Any]:
    """The ``_id`` of every quarantine record without a content hash that an erasure recorded in ``db`` erased."""
    return {qid for doc in db[ERASURES].find({}, {"_id": 0, "quarantine_ids": 1}) for qid in doc.get("quarantine_ids", ())}


def recent_erasures(db: Database, *, limit: int = 20) -> list[dict[str, Any]]:
    """The records of the ``limit`` latest erasures, newest first, without their hashes and quarantine ids."""
    cursor = db[ERASURES].find({"part": 0}, {"_id": 0, "hashes": 0, "quarantine_ids": 0, "part": 0}).sort([("at", pymongo.DESCENDING)]).limit(limit)
    return list(cursor)
