"""The models collection on a real MongoDB wire server: register, promote, rollback."""

from datetime import datetime, timedelta

import pytest
from pymongo.database import Database

from store.models import ModelStore
from voxflow.errors import ModelError


def _doc(version: str, auc: float) -> dict:
    return {"version": version, "booster_sha256": version * 4, "feature_version": 1, "data_hash": "d", "metrics": {"auc": auc, "uar": 0.6}}


def test_register_is_challenger_and_keeps_status_on_repeat(mongo_db: Database) -> None:
    store = ModelStore(mongo_db)
    store.ensure_indexes()
    assert store.champion() is None and store.list() == []
    assert store.register(_doc("a", 0.7))["status"] == "challenger"
    store.promote("a", "first")
    again = store.register({**_doc("a", 0.71)})
    assert again["status"] == "champion" and again["metrics"]["auc"] == 0.71
    assert mongo_db["models"].count_documents({}) == 1


def test_promote_retires_the_previous_champion(mongo_db: Database) -> None:
    store = ModelStore(mongo_db)
    for version in ("a", "b"):
        store.register(_doc(version, 0.7))
    store.promote("a", "first")
    champion = store.promote("b", "better")
    assert champion["status"] == "champion" and champion["reason"] == "better" and champion["promoted_at"] is not None
    assert store.champion()["version"] == "b"
    assert store.get("a")["status"] == "retired" and store.get("a")["reason"] == "replaced by b"
    with pytest.raises(ModelError, match="not registered"):
        store.promote("zzz", "typo")


def test_rollback_walks_back_then_to_the_shipped_baseline(mongo_db: Database) -> None:
    store = ModelStore(mongo_db)
    for version in ("a", "b", "c"):
        store.register(_doc(version, 0.7))
        store.promote(version, "newer")
    retired, restored = store.rollback()
    assert (retired["version"], restored["version"]) == ("c", "b")
    retired, restored = store.rollback()  # c was rolled back: never brought back by a later rollback
    assert (retired["version"], restored["version"]) == ("b", "a")
    retired, restored = store.rollback()
    assert retired["version"] == "a" and restored is None and store.champion() is None
    with pytest.raises(ModelError, match="nothing to roll back"):
        store.rollback()
    assert store.promote("c", "by hand")["status"] == "champion"


def test_a_model_its_check_refuses_is_neither_promoted_nor_brought_back(mongo_db: Database) -> None:
    store = ModelStore(mongo_db)
    for version in ("a", "b"):
        store.register(_doc(version, 0.7))
        store.promote(version, "newer")

    def refuse_a(doc: dict) -> None:
        if doc["version"] == "a":
            raise ModelError("model a: artifact missing")

    with pytest.raises(ModelError, match="artifact missing"):
        store.promote("a", "by hand", check=refuse_a)
    with pytest.raises(ModelError, match="artifact missing"):
        store.rollback(check=refuse_a)  # would bring back a
    assert store.champion()["version"] == "b" and store.get("a")["status"] == "retired"


def test_every_time_reads_back_as_a_utc_datetime(mongo_db: Database) -> None:
    # nx-27017 stores a datetime written by $set as text: `models list` showed promoted_at without its zone.
    store = ModelStore(mongo_db)
    for version in ("a", "b"):
        store.register(_doc(version, 0.7))
    store.promote("a", "first")
    store.promote("b", "better")
    for doc in (store.get("a"), store.champion(), *store.list()):
        times = [doc[name] for name in ("created_at", "promoted_at", "retired_at") if name in doc]
        assert times and all(isinstance(t, datetime) and t.utcoffset() == timedelta(0) for t in times), doc
    assert store.get("a")["created_at"] <= store.get("a")["promoted_at"] <= store.get("a")["retired_at"]


def test_rolled_back_reads_back_as_a_bool(mongo_db: Database) -> None:
    # nx-27017 gives back 1/0 for a bool written by $set: `models list --json` showed "rolled_back": 1.
    store = ModelStore(mongo_db)
    for version in ("a", "b"):
        store.register(_doc(version, 0.7))
        store.promote(version, "newer")
    store.rollback()
    read = {doc["version"]: doc["rolled_back"] for doc in store.list()}
    assert read == {"a": False, "b": True} and all(type(flag) is bool for flag in read.values())
    assert store.get("b")["rolled_back"] is True and store.champion()["rolled_back"] is False
