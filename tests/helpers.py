"""Plain helpers (not fixtures) shared by tests in more than one folder."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from store.backup import COLLECTIONS


def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every document of each backed-up collection, in ``_id`` order: equal snapshots mean identical contents."""
    return {name: sorted(db[name].find(), key=lambda doc: str(doc["_id"])) for name in COLLECTIONS}
