"""The ``labels`` collection: reference labels that retraining learns from, keyed by audio content."""

from __future__ import annotations

from typing import Any, Sequence

import pymongo
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from voxflow.errors import ServiceError

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
        """Store ``docs``, replacing any earlier label of the same audio; returns how many were written.

        Each document replaces its audio's label in one upsert, so a refused write leaves that audio's
        earlier label in place.

        Raises
        ------
        ServiceError
            When MongoDB refuses a write or cannot be reached; the audio not written keep their earlier labels.
        """
        written = 0
        for start in range(0, len(docs), _BATCH):
            batch = [ReplaceOne({"audio_sha256": doc["audio_sha256"]}, doc, upsert=True) for doc in docs[start : start + _BATCH]]
            try:
                result = self._labels.bulk_write(batch, ordered=False)
            except BulkWriteError as exc:
                refused = exc.details.get("writeErrors") or [{"index": 0, "errmsg": str(exc)}]
                first = docs[start + refused[0]["index"]]["audio_sha256"]
                raise ServiceError(
                    f"MongoDB refused {len(refused)} labels (first: audio {first[:12]}: {refused[0].get('errmsg')}); no stored label was removed"
                ) from exc
            except PyMongoError as exc:
                raise ServiceError(f"MongoDB could not store the labels: {exc}; no stored label was removed") from exc
            written += result.upserted_count + result.matched_count
        return written

    def all(self) -> list[dict[str, Any]]:
        """Every label document, without ``_id``, in audio_sha256 order."""
        return list(self._labels.find({}, {"_id": 0}).sort("audio_sha256", pymongo.ASCENDING))

    def count(self) -> int:
        return self._labels.count_documents({})
