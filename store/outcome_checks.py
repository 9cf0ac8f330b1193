"""The ``outcome_checks`` collection: the report of each ``model-outcomes`` flow run (:mod:`flows.outcomes`), which
the dashboard's Models page shows. Aggregates only (counts and metrics, no recording); derived from predictions and
labels, so a backup leaves it out: running the flow again rebuilds it."""

from __future__ import annotations

from typing import Any, Mapping

import pymongo
from pymongo.database import Database

OUTCOME_CHECKS = "outcome_checks"


def record_outcome_check(db: Database, report: Mapping[str, Any]) -> None:
    """Insert one check's report (it carries ``model_version`` and ``checked_at``)."""
    db[OUTCOME_CHECKS].create_index([("model_version", pymongo.ASCENDING), ("checked_at", pymongo.DESCENDING)])
    db[OUTCOME_CHECKS].insert_one(dict(report))


def outcome_checks(db: Database, model_version: str, *, limit: int = 52) -> list[dict[str, Any]]:
    """The ``limit`` newest checks of ``model_version`` (a year of weekly ones), newest first, without ``_id``."""
    cursor = db[OUTCOME_CHECKS].find({"model_version": model_version}, {"_id": 0}).sort([("checked_at", pymongo.DESCENDING)])
    return list(cursor.limit(limit))


def last_outcome_check(db: Database, model_version: str) -> dict[str, Any] | None:
    """The newest check of ``model_version``; None when it was never checked."""
    return next(iter(outcome_checks(db, model_version, limit=1)), None)
