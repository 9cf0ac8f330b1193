"""The ``models`` collection: which registered model is champion, challenger or retired, and why."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import pymongo
from pymongo.database import Database

from store.times import utc_times
from voxflow.errors import ModelError

CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"


TIME_FIELDS = ("created_at", "promoted_at", "retired_at")
FLAG_FIELDS = ("rolled_back",)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_read(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``models`` document as voxflow reads it: its times as UTC datetimes (:func:`store.times.utc_times`),
    its flags as bool: nx-27017 gives back 1 or 0 for a bool written by ``$set`` (an inserted one stays bool).

    Examples
    --------
    >>> _as_read({"version": "v1", "rolled_back": 1})
    {'version': 'v1', 'rolled_back': True}
    """
    doc = utc_times(doc, TIME_FIELDS)
    if doc is not None:
        doc.update({name: bool(doc[name]) for name in FLAG_FIELDS if doc.get(name) is not None})
    return doc


class ModelStore:
    """Registry metadata, one document per model version (artifacts stay files, see models/registry.py).

    Parameters
    ----------
    db : pymongo.database.Database
        The voxflow database.
    """

    def __init__(self, db: Database) -> None:
        self._models = db["models"]

    def ensure_indexes(self) -> None:
        """Unique version; status for the champion lookup."""
        self._models.create_index([("version", pymongo.ASCENDING)], unique=True)
        self._models.create_index([("status", pymongo.ASCENDING)])

    def register(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Record a new model as challenger (``doc`` holds version, booster_sha256, metrics, data_hash...).

        Registering a version again (the same booster bytes) updates its metrics and reason, keeps its status.
        """
        fields = {k: v for k, v in doc.items() if k not in ("status", "created_at")}
        self._models.update_one(
            {"version": doc["version"]},
            {"$set": fields, "$setOnInsert": {"status": CHALLENGER, "created_at": doc.get("created_at", _now())}},
            upsert=True,
        )
        return self.get(doc["version"])

    def get(self, version: str) -> dict[str, Any]:
        """The document of ``version``.

        Raises
        ------
        ModelError
            When no such version is registered.
        """
        doc = _as_read(self._models.find_one({"version": version}, {"_id": 0}))
        if doc is None:
            raise ModelError(f"model {version!r} is not registered (see `voxflow models list`)")
        return doc

    def find(self, version: str) -> dict[str, Any] | None:
        """The document of ``version``, or None."""
        return _as_read(self._models.find_one({"version": version}, {"_id": 0}))

    def champion(self) -> dict[str, Any] | None:
        """The champion's document, or None while the shipped baseline is champion."""
        return _as_read(self._models.find_one({"status": CHAMPION}, {"_id": 0}, sort=[("promoted_at", pymongo.DESCENDING)]))

    def list(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Every registered model, newest first."""
        found = self._models.find({}, {"_id": 0}).sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]).limit(limit)
        return [_as_read(doc) for doc in found]

    def set_reason(self, version: str, reason: str) -> None:
        """Record why a model has its status (e.g. why a challenger was not promoted)."""
        self._models.update_one({"version": version}, {"$set": {"reason": reason}})

    def promote(self, version: str, reason: str, *, check: Callable[[dict[str, Any]], None] = lambda doc: None) -> dict[str, Any]:
        """Make ``version`` the champion; the previous champion is retired.

        ``check`` vets the version's document first (its artifact, say) and raises to refuse it. Callers
        serialise changes of champion (``tasks.model_registry.registry_changes``): these are several writes.

        Raises
        ------
        ModelError
            When ``version`` is not registered, or from ``check``.
        """
        check(self.get(version))
        now = _now()
        self._models.update_one({"version": version}, {"$set": {"status": CHAMPION, "promoted_at": now, "rolled_back": False, "reason": reason}})
        self._models.update_many(
            {"status": CHAMPION, "version": {"$ne": version}},
            {"$set": {"status": RETIRED, "retired_at": now, "reason": f"replaced by {version}"}},
        )
        return self.get(version)

    def rollback(self, *, check: Callable[[dict[str, Any]], None] = lambda doc: None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Retire the champion and bring back the one it replaced (None: the shipped baseline is champion again).

        A rolled-back model is never brought back by a later rollback; promote it by name instead. ``check``
        vets the model to bring back before anything changes, as for :meth:`promote`.

        Raises
        ------
        ModelError
            When no model is champion (the shipped baseline cannot be rolled back), or from ``check``.
        """
        current = self.champion()
        if current is None:
            raise ModelError("nothing to roll back: no registered champion (the shipped baseline is in use)")
        previous = self._models.find_one(
            {"status": RETIRED, "promoted_at": {"$ne": None}, "rolled_back": {"$ne": True}, "version": {"$ne": current["version"]}},
            {"_id": 0},
            sort=[("retired_at", pymongo.DESCENDING)],
        )
        if previous is not None:
            check(previous)
        now = _now()
        self._models.update_one(
            {"version": current["version"]}, {"$set": {"status": RETIRED, "retired_at": now, "rolled_back": True, "reason": "rolled back"}}
        )
        if previous is None:
            return self.get(current["version"]), None
        self._models.update_one(
            {"version": previous["version"]},
            {"$set": {"status": CHAMPION, "promoted_at": now, "reason": f"restored by rollback of {current['version']}"}},
        )
        return self.get(current["version"]), self.get(previous["version"])
