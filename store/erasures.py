"""The ``erasures`` collection: one record per ``voxflow forget`` (when, where, how many), with the contents it
erased, so that restoring a backup taken before it erases them again.

A record names no path and no subject: only the content hashes (sha256 of the audio bytes, from which no audio
can be recovered) of the recordings erased, the counts and the host. Like the ``backups`` catalogue, a restore
merges it, never rolls it back with the data (:mod:`store.backup`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pymongo
from pymongo.database import Database

ERASURES = "erasures"
HASHES_PER_RECORD = 50_000  # ~3.5 MB of hashes, well under MongoDB's 16 MB document limit


def record_erasure(db: Database, record: Mapping[str, Any], hashes: Iterable[str]) -> None:
    """Insert the record of one erasure: ``record`` (counts, time, host), with ``hashes`` spread over as many documents
    as they need (each a copy of ``record`` and its ``part``)."""
    unique = sorted(set(hashes))
    parts = [unique[start : start + HASHES_PER_RECORD] for start in range(0, len(unique), HASHES_PER_RECORD)] or [[]]
    db[ERASURES].insert_many([{**record, "part": part, "hashes": listed} for part, listed in enumerate(parts)])


def erased_contents(db: Database) -> set[str]:
    """Every content hash an erasure recorded in ``db`` erased."""
    return {sha for doc in db[ERASURES].find({}, {"_id": 0, "hashes": 1}) for sha in doc.get("hashes", ())}


def recent_erasures(db: Database, *, limit: int = 20) -> list[dict[str, Any]]:
    """The records of the ``limit`` latest erasures, newest first, without their hashes."""
    cursor = db[ERASURES].find({"part": 0}, {"_id": 0, "hashes": 0, "part": 0}).sort([("at", pymongo.DESCENDING)]).limit(limit)
    return list(cursor)
