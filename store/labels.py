"""The ``labels`` collection: reference labels that retraining learns from, keyed by audio content."""

from __future__ import annotations

from typing import AbstractSet, Any, Sequence

import pymongo
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from store.mongo import IDENTITY_FIELDS, Identity, identity, listed_query
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

        A batch's earlier labels are read, deleted and the new ones inserted (upserts cost time in
        proportion to the collection's size on nx-27017: 156 s against 1.8 s for 20,000 labels); a
        label MongoDB refuses gets its earlier one back, so a refused write removes nothing.

        Raises
        ------
        ServiceError
            When MongoDB refuses a write or cannot be reached.
        """
        written = 0
        for start in range(0, len(docs), _BATCH):
            batch = [dict(doc) for doc in docs[start : start + _BATCH]]  # insert_many adds _id to what it is given
            shas = [doc["audio_sha256"] for doc in batch]
            try:
                earlier = {doc["audio_sha256"]: doc for doc in self._labels.find({"audio_sha256": {"$in": shas}})}
                self._labels.delete_many({"audio_sha256": {"$in": shas}})
                try:
                    self._labels.insert_many(batch, ordered=False)
                except BulkWriteError as exc:
                    refused = exc.details.get("writeErrors") or [{"index": 0, "errmsg": str(exc)}]
                    restored = [earlier[shas[error["index"]]] for error in refused if shas[error["index"]] in earlier]
                    if restored:
                        self._labels.insert_many(restored, ordered=False)
                    first = shas[refused[0]["index"]]
                    raise ServiceError(
                        f"MongoDB refused {len(refused)} labels (first: audio {first[:12]}: {refused[0].get('errmsg')}); "
                        "no stored label was removed"
                    ) from exc
            except PyMongoError as exc:
                raise ServiceError(f"MongoDB could not store the labels: {exc}; import the file again once it answers") from exc
            written += len(batch)
        return written

    def listed_under(
        self, *, paths: AbstractSet[str] = frozenset(), subjects: AbstractSet[str] = frozenset(), folders: AbstractSet[str] = frozenset()
    ) -> set[Identity]:
        """(``audio_sha256``, ``path``, ``subject_id``) of the labels of ``paths``, ``subjects`` or files under ``folders``."""
        query = listed_query(paths, subjects, folders)
        return set() if query is None else {identity(doc) for doc in self._labels.find(query, dict.fromkeys(IDENTITY_FIELDS, 1))}

    def forget(self, hashes: AbstractSet[str], *, dry_run: bool = False) -> set[str]:
        """Delete the labels of these contents (1,000 at a time); the contents that had one."""
        unique, found = sorted(hashes), set()
        for start in range(0, len(unique), _BATCH):
            batch = {"audio_sha256": {"$in": unique[start : start + _BATCH]}}
            labelled = {doc["audio_sha256"] for doc in self._labels.find(batch, {"_id": 0, "audio_sha256": 1})}
            if labelled and not dry_run:
                self._labels.delete_many({"audio_sha256": {"$in": sorted(labelled)}})
            found |= labelled
        return found

    def all(self) -> list[dict[str, Any]]:
        """Every label document, without ``_id``, in audio_sha256 order."""
        return list(self._labels.find({}, {"_id": 0}).sort("audio_sha256", pymongo.ASCENDING))

    def count(self) -> int:
        return self._labels.count_documents({})
