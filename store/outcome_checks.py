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


def last_outcome_check(db: Database, model_version: str) -> dict[str, Any] | None:
    """The newest check of ``model_version``, without ``_id``; None when it was never checked."""
    return db[OUTCOME_CHECKS].find_one({"model_version": model_version}, {"_id": 0}, sort=[("checked_at", pymongo.DESCENDING)])
