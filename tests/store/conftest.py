"""Shared by the store tests: a ResultStore on the test's own database, and the counts rollup as tuples."""

from __future__ import annotations

from datetime import datetime

import pytest
from pymongo.database import Database

from store.counts import COUNTS
from store.mongo import ResultStore


@pytest.fixture
def results(mongo_db: Database) -> ResultStore:
    """A ResultStore on ``mongo_db`` with its indexes, retrying writes for 30 s (long enough to ride out a Mongo restart)."""
    store = ResultStore(mongo_db, retry_s=30)
    store.ensure_indexes()
    return store


def rollup(db: Database) -> dict[datetime, tuple[int, int, int]]:
    """The prediction_counts rollup: bucket start -> (predictions, positives, quarantined)."""
    return {doc["_id"]: (doc.get("predictions", 0), doc.get("positives", 0), doc.get("quarantined", 0)) for doc in db[COUNTS].find()}
