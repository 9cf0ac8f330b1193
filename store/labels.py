"""The ``labels`` collection: reference labels that retraining learns from, keyed by audio content."""

from __future__ import annotations

from typing import Any, Sequence

import pymongo
from pymongo.database import Database

_BATCH = 1000


class LabelStore:
    """One label document per ``audio_sha256``: label, subject_id, path, source, metadata.

    Parameters
    ----------
    db : pymongo.database.Database
        The voxflow database.
    """

    def __init__(self, db: Database) -> None:
        self._labels = db["labels"]

    def ensure_indexes(self) -> None:
        """Unique audio_sha256: a later import of the same audio replaces its label."""
        self._labels.create_index([("audio_sha256", pymongo.ASCENDING)], unique=True)

    def replace(self, docs: Sequence[dict[str, Any]]) -> int:
        """Store ``docs``, replacing any earlier label of the same audio; returns how many were written."""
        written = 0
        for start in range(0, len(docs), _BATCH):
            batch = [dict(doc) for doc in docs[start : start + _BATCH]]
            # delete + insert_many, not per-document upserts: upserts cost ~8 ms each on nx-27017.
            self._labels.delete_many({"audio_sha256": {"$in": [doc["audio_sha256"] for doc in batch]}})
            written += len(self._labels.insert_many(batch, ordered=False).inserted_ids)
        return written

    def all(self) -> list[dict[str, Any]]:
        """Every label document, without ``_id``, in audio_sha256 order."""
        return list(self._labels.find({}, {"_id": 0}).sort("audio_sha256", pymongo.ASCENDING))

    def count(self) -> int:
        return self._labels.count_documents({})
