"""The erasures record: what each forget erased, split over documents as needed, listed without its hashes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo.database import Database

from store import erasures
from store.erasures import erased_contents, erased_quarantine_ids, recent_erasures, record_erasure

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def test_an_erasures_hashes_are_split_over_documents_read_back_whole_and_listed_without_them(mongo_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erasures, "HASHES_PER_RECORD", 2)
    record_erasure(mongo_db, {"at": T0, "recordings": 5}, [f"{i:064x}" for i in (4, 3, 2, 1, 0)])
    record_erasure(mongo_db, {"at": T0 + timedelta(hours=1), "recordings": 0}, [])
    assert mongo_db["erasures"].count_documents({}) == 4  # 2 + 2 + 1 hashes, and the one that found nothing
    assert erased_contents(mongo_db) == {f"{i:064x}" for i in range(5)}
    listed = recent_erasures(mongo_db)
    assert [(doc["at"], doc["recordings"]) for doc in listed] == [(T0 + timedelta(hours=1), 0), (T0, 5)]
    assert all("hashes" not in doc and "part" not in doc for doc in listed)
    assert recent_erasures(mongo_db, limit=1)[0]["recordings"] == 0


def test_the_quarantine_ids_of_unreadable_files_are_split_beside_the_hashes_and_read_back_whole(mongo_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erasures, "HASHES_PER_RECORD", 2)
    ids = [ObjectId() for _ in range(5)]
    record_erasure(mongo_db, {"at": T0, "recordings": 1}, [f"{1:064x}"], ids)
    assert mongo_db["erasures"].count_documents({}) == 3  # 2 + 2 + 1 ids, the hash in the first
    assert erased_quarantine_ids(mongo_db) == set(ids) and erased_contents(mongo_db) == {f"{1:064x}"}
    [listed] = recent_erasures(mongo_db)
    assert listed["recordings"] == 1 and "quarantine_ids" not in listed and "quarantine_ids" in mongo_db["erasures"].find_one()
