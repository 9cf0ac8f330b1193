"""Backups against a real MongoDB wire-protocol server: dump, wipe, restore, corruption, retention."""

from __future__ import annotations

import gzip
import json
import threading
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import bson
import pyarrow as pa
import pytest
from bson import Int64, ObjectId
from pymongo.database import Database

from store.backup import (
    COLLECTIONS,
    backup_name,
    compare_with_manifest,
    list_backups,
    open_location,
    parse_backup_name,
    prune_backups,
    resolve_backup,
    restore_database,
    restore_models,
    select_retained,
    verify_files,
    write_backup,
)
from store.cache import connect_redis
from store.counts import COUNTS
from store.feature_store import FeatureStore
from store.mongo import ResultStore
from tests.helpers import snapshot
from tests.store.conftest import rollup
from voxflow import services
from voxflow.errors import BackupError
from voxflow.settings import Settings

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)


def names(*stamps: str) -> list[str]:
    return [f"{stamp}T020000Z" for stamp in stamps]


# Retention: a pure function of names and settings.


def test_backup_names_round_trip() -> None:
    assert backup_name(T0) == "2026-11-27T020000Z"
    assert parse_backup_name("2026-11-27T020000Z") == T0
    for bad in ("2026-11-27", "latest", "2026-13-27T020000Z", "x2026-11-27T020000Z", ".2026-11-27T020000Z.tmp"):
        assert parse_backup_name(bad) is None


def test_retention_keeps_the_newest_of_each_recent_day_and_week() -> None:
    daily = [backup_name(T0 - timedelta(days=d)) for d in range(40)]
    kept = select_retained(daily, keep_daily=7, keep_weekly=4)
    last_7_days = {backup_name(T0 - timedelta(days=d)) for d in range(7)}
    # 2026-11-27 is a Friday: the newest of each of the 4 most recent ISO weeks are Fri 27, Sun 22, Sun 15, Sun 8.
    weekly = {"2026-11-22T020000Z", "2026-11-15T020000Z", "2026-11-08T020000Z"}
    assert kept == last_7_days | weekly


def test_retention_takes_one_per_day_and_ignores_foreign_names() -> None:
    folders = ["2026-11-27T020000Z", "2026-11-27T150000Z", "2026-11-26T020000Z", "notes", "2026-11-25T020000Z.partial"]
    assert select_retained(folders, keep_daily=2, keep_weekly=0) == {"2026-11-27T150000Z", "2026-11-26T020000Z"}
    assert select_retained([], keep_daily=7, keep_weekly=4) == set()
    assert select_retained(folders, keep_daily=1, keep_weekly=1) == {"2026-11-27T150000Z"}


def test_retention_with_gaps_counts_days_that_have_a_backup() -> None:
    sparse = names("2026-11-01", "2026-11-10", "2026-11-20", "2026-11-27")
    assert select_retained(sparse, keep_daily=3, keep_weekly=0) == set(sparse[1:])
    assert select_retained(sparse, keep_daily=1, keep_weekly=3) == set(sparse[1:])


def test_resolve_backup_by_name_day_or_latest() -> None:
    folders = ["2026-11-26T020000Z", "2026-11-27T020000Z", "2026-11-27T150000Z"]
    assert resolve_backup(folders, "latest") == "2026-11-27T150000Z"
    assert resolve_backup(folders, "2026-11-27") == "2026-11-27T150000Z"
    assert resolve_backup(folders, "2026-11-26T020000Z") == "2026-11-26T020000Z"
    with pytest.raises(BackupError, match="no backup matches '2026-11-20'"):
        resolve_backup(folders, "2026-11-20")


# Dump, wipe, restore against the real server.


def _populate(db: Database, n: int = 300) -> None:
    results = ResultStore(db, retry_s=5)
    results.ensure_indexes()
    results.insert_predictions(
        [
            {
                "audio_sha256": f"{i:064x}",
                "model_version": "m1",
                "run_id": "run-a",
                "score": i / n,
                "label": "pathological" if i % 3 == 0 else "healthy",
                "quality_flags": ["low_snr"] if i % 7 == 0 else [],
                "top_factors": [{"feature": "jitter", "shap": -0.25}, {"feature": "hnr", "shap": 0.5}],
                "duration_s": 2.5,
                "created_at": T0 + timedelta(milliseconds=i),
                "big": Int64(2**40 + i),
                "payload": bson.Binary(bytes([i % 256]) * 5, subtype=5),
                "missing": None,
            }
            for i in range(n)
        ]
    )
    results.insert_quarantine([{"run_id": "run-a", "path": f"/bad/{i}.wav", "stage": "decode", "reason": "empty file", "created_at": T0} for i in range(5)])
    results.start_run({"run_id": "run-a", "status": "completed", "started_at": T0, "counts": {"seen": n, "scored": n}})
    db["labels"].insert_many([{"audio_sha256": f"{i:064x}", "label": "healthy", "subject_id": f"s{i}"} for i in range(10)])
    db["models"].insert_one({"version": "m1", "status": "champion", "metrics": {"auc": 0.81}, "oid_ref": ObjectId()})
    db["scaling_events"].insert_one({"time": T0, "workers_before": 1, "workers_after": 2, "reason": "backlog"})
    # "backups" stays empty: a collection that was never created is backed up as zero documents.


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    (models / "m1").mkdir(parents=True)
    (models / "m1" / "model.ubj").write_bytes(bytes(range(256)) * 40)
    (models / "m1" / "card.json").write_text('{"version": "m1"}')
    (models / "CHAMPION").write_text("m1\n")
    (models / ".staging").mkdir()
    (models / ".staging" / "half.ubj").write_bytes(b"in progress")
    features = tmp_path / "features"
    FeatureStore(features).write_chunk(pa.table({"audio_sha256": ["a", "b"], "f0": [1.0, 2.0]}), feature_version=1, run_id="run-a", chunk_id=0)
    return models, features


def _backup(db: Database, location: str, registry: tuple[Path, Path], name: str = "2026-11-27T020000Z") -> tuple[Any, str, dict[str, Any]]:
    fs, root = open_location(location)
    folder = f"{root}/{name}"
    manifest = write_backup(db, fs, folder, models_dir=registry[0], feature_store_dir=registry[1], source="mongodb://127.0.0.1/", version="0.1.0")
    return fs, folder, manifest


def test_the_features_manifest_lists_chunk_files_and_merged_parts(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    store = FeatureStore(registry[1])
    store.write_chunk(pa.table({"audio_sha256": ["c"], "f0": [3.0]}), feature_version=1, run_id="run-b", chunk_id=0)
    (part,) = store.compact(feature_version=1).parts
    store.write_chunk(pa.table({"audio_sha256": ["d"], "f0": [4.0]}), feature_version=2, run_id="run-c", chunk_id=0)
    fs, folder, _ = _backup(mongo_db, str(tmp_path / "backups"), registry)
    listed = json.loads(fs.cat_file(f"{folder}/features-manifest.json"))
    assert [entry["path"] for entry in listed] == [f"feature_version=1/merged/{part.name}", "feature_version=2/run_id=run-c/chunk-00000.parquet"]
    assert listed[0]["bytes"] == part.stat().st_size


def test_backup_wipe_restore_gives_identical_documents_and_indexes(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    _populate(mongo_db)
    before = snapshot(mongo_db)
    indexes = {name: mongo_db[name].index_information() for name in COLLECTIONS}
    fs, folder, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)

    assert {name: entry["count"] for name, entry in manifest["collections"].items()} == {name: len(docs) for name, docs in before.items()}
    assert manifest["source"] == {"server": "mongodb://127.0.0.1/", "database": mongo_db.name} and manifest["voxflow_version"] == "0.1.0"
    assert set(manifest["files"]) == {f"mongo/{name}.bson.gz" for name in COLLECTIONS} | {
        "models/CHAMPION", "models/m1/model.ubj", "models/m1/card.json", "features-manifest.json"
    }
    with gzip.open(f"{folder}/mongo/predictions.bson.gz", "rb") as stream:
        assert len(list(bson.decode_file_iter(stream))) == 300

    for name in COLLECTIONS:
        mongo_db[name].drop()
    assert all(mongo_db[name].count_documents({}) == 0 for name in COLLECTIONS)

    restored = restore_database(fs, folder, verify_files(fs, folder), mongo_db, drop=False)
    assert restored == {name: len(docs) for name, docs in before.items()}
    assert snapshot(mongo_db) == before  # every document, every field, ObjectIds and tz-aware datetimes included
    assert mongo_db["predictions"].find_one({"audio_sha256": f"{5:064x}"})["created_at"] == T0 + timedelta(milliseconds=5)
    assert {name: mongo_db[name].index_information() for name in COLLECTIONS} == indexes
    assert compare_with_manifest(mongo_db, manifest) == []

    models_again = tmp_path / "models-again"
    assert restore_models(fs, folder, manifest, models_again) == 3
    assert (models_again / "m1" / "model.ubj").read_bytes() == (registry[0] / "m1" / "model.ubj").read_bytes()
    assert not (models_again / ".staging").exists()


def test_the_counts_rollup_is_rebuilt_by_a_restore_not_backed_up(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    _populate(mongo_db, n=40)
    ResultStore(mongo_db).insert_predictions(
        [{"audio_sha256": f"t{i}", "model_version": "m1", "score": i / 10, "threshold": 0.5, "created_at": T0 + timedelta(hours=1)} for i in range(10)]
    )
    counts = rollup(mongo_db)
    assert sorted(counts.values()) == [(10, 5, 0), (40, 0, 5)]
    fs, folder, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)
    assert COUNTS not in manifest["collections"] and not any(COUNTS in path for path in manifest["files"])

    for name in COLLECTIONS:
        mongo_db[name].drop()
    mongo_db[COUNTS].update_many({}, {"$inc": {"predictions": 1000}})  # stale: from before the wipe
    restore_database(fs, folder, manifest, mongo_db, drop=False)
    assert rollup(mongo_db) == counts
    elsewhere = mongo_db.client[f"{mongo_db.name}_r"]
    try:
        restore_database(fs, folder, manifest, elsewhere, drop=False)
        assert rollup(elsewhere) == counts
    finally:
        mongo_db.client.drop_database(elsewhere.name)


def test_a_changed_document_shows_in_the_comparison(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    _populate(mongo_db, n=20)
    _, _, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)
    assert compare_with_manifest(mongo_db, manifest) == []
    mongo_db["predictions"].update_one({"audio_sha256": f"{3:064x}"}, {"$set": {"score": 0.99}})
    mongo_db["labels"].delete_one({})
    assert compare_with_manifest(mongo_db, manifest) == [
        "predictions: same count, different documents (checksum)",
        "labels: 9 documents, backup has 10",
    ]


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete", "edit manifest"])
def test_a_corrupt_or_missing_file_is_refused_and_nothing_changes(
    damage: str, mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path
) -> None:
    _populate(mongo_db, n=30)
    fs, folder, _ = _backup(mongo_db, str(tmp_path / "backups"), registry)
    target = Path(folder) / "mongo" / "runs.bson.gz"
    if damage == "flip a byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-4])
    elif damage == "delete":
        target.unlink()
    else:
        manifest_path = Path(folder) / "manifest.json"
        manifest_path.write_text(manifest_path.read_text().replace('"count": 30', '"count": 31'))
    with pytest.raises(BackupError) as refused:
        verify_files(fs, folder)
    expected = {"edit manifest": "manifest.json does not match", "delete": "mongo/runs.bson.gz is missing"}
    assert expected.get(damage, "mongo/runs.bson.gz fails its sha256 check") in refused.value.reason


def test_restore_refuses_an_occupied_target_unless_dropping(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    _populate(mongo_db, n=10)
    fs, folder, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)
    before = snapshot(mongo_db)
    mongo_db["predictions"].insert_one({"audio_sha256": "written after the backup", "model_version": "m1"})
    with pytest.raises(BackupError, match="already has documents in predictions, runs, quarantine"):
        restore_database(fs, folder, manifest, mongo_db, drop=False)
    assert mongo_db["predictions"].count_documents({}) == 11
    restore_database(fs, folder, manifest, mongo_db, drop=True)
    assert snapshot(mongo_db) == before


def test_a_restore_keeps_the_record_of_later_backups_and_adds_the_ones_it_lacks(
    mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path
) -> None:
    _populate(mongo_db, n=10)
    mongo_db["backups"].insert_one({"backup_id": "earlier", "status": "verified"})
    fs, folder, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)
    mongo_db["backups"].delete_many({})
    mongo_db["backups"].insert_one({"backup_id": "later", "status": "verified"})  # taken after the one restored
    restored = restore_database(fs, folder, manifest, mongo_db, drop=True)
    assert sorted(doc["backup_id"] for doc in mongo_db["backups"].find()) == ["earlier", "later"] and restored["backups"] == 1
    assert compare_with_manifest(mongo_db, manifest) == []
    restore_database(fs, folder, manifest, mongo_db, drop=True)  # again: nothing doubled
    assert mongo_db["backups"].count_documents({}) == 2


def test_documents_written_during_the_backup_are_whole_or_absent(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    _populate(mongo_db, n=1500)
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        while not stop.is_set():
            i = 10_000 + len(written)
            mongo_db["predictions"].insert_one({"audio_sha256": f"{i:064x}", "model_version": "m1", "created_at": datetime.now(timezone.utc)})
            written.append(i)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        fs, folder, manifest = _backup(mongo_db, str(tmp_path / "backups"), registry)
    finally:
        stop.set()
        writer.join()
    assert written, "nothing was written while the backup ran"
    entry = manifest["collections"]["predictions"]
    mark = ObjectId(entry["high_water_id"])
    with gzip.open(f"{folder}/{entry['file']}", "rb") as stream:
        dumped = {doc["_id"]: doc for doc in bson.decode_file_iter(stream, codec_options=bson.CodecOptions(tz_aware=True))}
    at_mark = {doc["_id"]: doc for doc in mongo_db["predictions"].find() if doc["_id"] <= mark}
    assert dumped == at_mark  # exactly the documents up to the mark, each whole
    assert len(at_mark) == entry["count"] and mongo_db["predictions"].count_documents({}) > entry["count"]


def _peak_bytes(operation: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        operation()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dump_and_restore_stream_in_bounded_memory(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    mongo_db["predictions"].insert_many([{"i": i, "blob": bytes(8_000)} for i in range(3_000)])  # 24 MB of documents
    fs, root = open_location(str(tmp_path / "backups"))
    folder = f"{root}/2026-11-27T020000Z"
    dump_peak = _peak_bytes(
        lambda: write_backup(mongo_db, fs, folder, models_dir=registry[0], feature_store_dir=registry[1], source="test", version="0")
    )
    assert dump_peak < 6_000_000, f"peak {dump_peak / 1e6:.1f} MB while dumping 24 MB"
    manifest = verify_files(fs, folder)
    mongo_db["predictions"].drop()
    restore_peak = _peak_bytes(lambda: restore_database(fs, folder, manifest, mongo_db, drop=True))
    assert restore_peak < 12_000_000, f"peak {restore_peak / 1e6:.1f} MB while restoring 24 MB"
    assert mongo_db["predictions"].count_documents({}) == 3_000


def test_retention_prunes_exactly_what_the_settings_say(mongo_db: Database, registry: tuple[Path, Path], tmp_path: Path) -> None:
    mongo_db["labels"].insert_one({"label": "healthy"})
    location = str(tmp_path / "backups")
    days = [T0 - timedelta(days=d) for d in range(10)]
    for when in days:
        _backup(mongo_db, location, registry, name=backup_name(when))
    fs, root = open_location(location)
    (Path(root) / backup_name(T0 - timedelta(days=12))).mkdir()  # a failed backup's leftover (no manifest)
    (Path(root) / "README").write_text("not a backup")

    removed = prune_backups(fs, root, keep_daily=3, keep_weekly=2)
    kept = {backup_name(T0 - timedelta(days=d)) for d in (0, 1, 2, 5)}  # 3 days, and Sun 22 Nov closes the previous week
    assert set(list_backups(fs, root)) == kept
    assert sorted(p.name for p in Path(root).iterdir()) == sorted(kept | {"README"})
    assert len(removed) == 7


def test_memory_filesystem_url_works_too(mongo_db: Database, registry: tuple[Path, Path]) -> None:
    _populate(mongo_db, n=5)
    before = snapshot(mongo_db)
    fs, folder, manifest = _backup(mongo_db, "memory://voxflow-test-backups", registry)
    for name in COLLECTIONS:
        mongo_db[name].drop()
    restore_database(fs, folder, verify_files(fs, folder), mongo_db, drop=False)
    assert snapshot(mongo_db) == before
    fs.rm(folder, recursive=True)


# Redis: the queue survives a restart of the embedded server (appendonly yes under VOXFLOW_HOME).


def test_queue_entries_survive_an_embedded_redis_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(home=tmp_path_factory.mktemp("aof"), redis_url=None, mongo_uri=None, PREFECT_API_URL=None)
    try:
        client = connect_redis(services.redis_url(settings))
        ids = [client.xadd("voxflow:queue", {"path": f"/audio/{i}.wav"}) for i in range(50)]
        client.close()
        assert services.stop_service(settings, "redis") is True
        assert list((settings.services_dir / "redis").iterdir()), "no AOF under VOXFLOW_HOME/services/redis"
        client = connect_redis(services.redis_url(settings))
        assert [entry_id for entry_id, _ in client.xrange("voxflow:queue")] == ids
        client.close()
    finally:
        services.stop_services(settings)
