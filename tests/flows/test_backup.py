"""End to end: backup_nightly on the Prefect server (through the real CLI, or in this process to inject a failure), restore."""

from __future__ import annotations

import shutil
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pymongo
import pytest
import redis
from bson import ObjectId

import flows.backup
from flows.backup import backup_nightly, restore_backup, scratch_database
from store.backup import COLLECTIONS, verify_files
from store.cache import PredictionCache, connect_redis
from store.locks import hold_lock
from tests.flows.conftest import name_redis_clients, still_connected
from tests.helpers import snapshot
from tests.voxflow_cli import env_db, last_json, run_cli
from voxflow import services
from voxflow.errors import BackupError, LockError, ServiceError
from voxflow.settings import Settings, get_settings

pytestmark = pytest.mark.slow


def test_scratch_database_names() -> None:
    assert scratch_database("voxflow", "2026-11-27T020000Z", "verify") == "voxflow_verify_20261127T020000Z"


def test_backup_lock_retention_wipe_restore_through_the_cli(cli_env: dict[str, str], tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    env = {**cli_env, "VOXFLOW_BACKUP_DIR": str(backups), "VOXFLOW_BACKUP_KEEP_DAILY": "1", "VOXFLOW_BACKUP_KEEP_WEEKLY": "0"}
    client = pymongo.MongoClient(env["VOXFLOW_MONGO_URI"], tz_aware=True)
    db = client[env["VOXFLOW_MONGO_DB"]]
    now = datetime(2026, 11, 27, 1, 59, tzinfo=timezone.utc)
    db["predictions"].create_index([("audio_sha256", 1), ("model_version", 1)], unique=True)
    db["predictions"].insert_many([{"audio_sha256": f"{i:064x}", "model_version": "m1", "score": i / 50, "created_at": now} for i in range(50)])
    db["runs"].insert_one({"run_id": "r1", "status": "completed", "started_at": now})
    db["labels"].insert_one({"audio_sha256": f"{1:064x}", "label": "healthy", "ref": ObjectId()})
    before = snapshot(db)
    indexes = db["predictions"].index_information()

    first = last_json(run_cli(["backup", "--json"], env))
    assert first["status"] == "verified" and first["verified"] is True and first["error"] is None
    assert first["counts"] == {name: len(docs) for name, docs in before.items()}
    assert first["path"] == f"{backups}/{first['backup_id']}" and (backups / first["backup_id"] / "manifest.json").is_file()
    assert not [name for name in client.list_database_names() if "_verify_" in name], "the scratch database was left behind"
    listed = last_json(run_cli(["backup", "--list", "--json"], env))
    assert [(r["backup_id"], r["verified"], r["status"]) for r in listed] == [(first["backup_id"], True, "verified")]

    # A second trigger while one runs is refused with a clear line, and leaves no backup behind.
    with hold_lock(connect_redis(env["VOXFLOW_REDIS_URL"]), "backup", ttl_s=30) as held:
        refused = run_cli(["backup"], env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"voxflow: error: another backup run is in progress (lock voxflow:lock:backup held by {held.token})" in refused.stderr
    assert "Backup refused: another backup run is in progress" in refused.stderr + refused.stdout

    # Retention: older backups (and today's earlier one) go once the new one is verified.
    for old in ("2026-11-20T020000Z", "2026-11-26T020000Z"):
        shutil.copytree(backups / first["backup_id"], backups / old)
    second = last_json(run_cli(["backup", "--json"], env))
    assert second["removed"] == ["2026-11-20T020000Z", "2026-11-26T020000Z", first["backup_id"]]
    assert sorted(p.name for p in backups.iterdir()) == [second["backup_id"]]
    assert second["counts"]["backups"] == 1  # the first backup's record, written before this dump
    listed = last_json(run_cli(["backup", "--list", "--json"], env))
    assert [(r["backup_id"], r["status"]) for r in listed] == [(second["backup_id"], "verified"), (first["backup_id"], "pruned")]
    gone = run_cli(["restore", first["backup_id"]], env)
    assert gone.stderr.strip().endswith(f"no backup matches {first['backup_id']!r} (newest first: {second['backup_id']})"), gone.stderr[-2000:]

    # Restore by default goes to a scratch database; the live one needs --drop.
    scratch = last_json(run_cli(["restore", "latest", "--json"], env))
    assert scratch["database"] == scratch_database(env["VOXFLOW_MONGO_DB"], second["backup_id"], "restore")
    restored = client[scratch["database"]]
    assert {name: docs for name, docs in snapshot(restored).items() if name != "backups"} == {n: d for n, d in before.items() if n != "backups"}
    client.drop_database(scratch["database"])

    for name in COLLECTIONS:
        db[name].drop()
    live = run_cli(["restore", second["backup_id"], "--into", env["VOXFLOW_MONGO_DB"]], env)
    assert live.returncode == 2 and "pass --drop" in live.stderr and "Traceback" not in live.stderr

    # One corrupt byte: refused with the file named, and nothing written anywhere.
    target = backups / second["backup_id"] / "mongo" / "predictions.bson.gz"
    good = target.read_bytes()
    target.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    corrupt = run_cli(["restore", "latest", "--drop", "--into", env["VOXFLOW_MONGO_DB"]], env)
    assert corrupt.returncode == 2
    assert "mongo/predictions.bson.gz fails its sha256 check" in corrupt.stderr and "nothing was restored" in corrupt.stderr
    assert all(db[name].count_documents({}) == 0 for name in COLLECTIONS)
    target.write_bytes(good)

    done = last_json(run_cli(["restore", "latest", "--drop", "--into", env["VOXFLOW_MONGO_DB"], "--json"], env))
    assert done["database"] == env["VOXFLOW_MONGO_DB"]
    after = snapshot(db)
    assert {n: d for n, d in after.items() if n != "backups"} == {n: d for n, d in before.items() if n != "backups"}
    assert [r["backup_id"] for r in after["backups"]] == [first["backup_id"]]
    assert db["predictions"].index_information() == indexes
    client.close()


def test_a_pruning_failure_keeps_the_new_backup_and_is_recorded(
    in_process: Settings, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_error(*args: object, **kwargs: object) -> list[str]:
        raise OSError("Input/output error removing 2026-11-20T020000Z")

    monkeypatch.setattr(flows.backup, "prune_backups", disk_error)
    record = backup_nightly()
    assert record["status"] == "verified" and record["verified"] is True and record["removed"] == []
    assert record["prune_error"] == "OSError: Input/output error removing 2026-11-20T020000Z"
    verify_files(*flows.backup.open_location(f"{in_process.backup_location}/{record['backup_id']}"))
    stored = list(env_db(cli_env)["backups"].find({}, {"_id": 0}))
    assert [(r["backup_id"], r["status"], r["prune_error"]) for r in stored] == [(record["backup_id"], "verified", record["prune_error"])]
    listed = run_cli(["backup", "--list"], cli_env)
    assert listed.returncode == 0 and "prune_error" in listed.stdout and "Input/output error" in listed.stdout


def test_a_run_whose_folder_exists_leaves_that_backup_and_its_record_alone(
    in_process: Settings, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    names = name_redis_clients(monkeypatch, flows.backup)
    first = backup_nightly()
    monkeypatch.setattr(flows.backup, "backup_name", lambda at: first["backup_id"])  # a second run in the same second
    with pytest.raises(BackupError, match="already exists"):
        backup_nightly()
    verify_files(*flows.backup.open_location(f"{in_process.backup_location}/{first['backup_id']}"))
    stored = list(env_db(cli_env)["backups"].find({}, {"_id": 0}).sort([("started_at", 1)]))
    assert [(r["backup_id"], r["status"]) for r in stored] == [(first["backup_id"], "verified"), (first["backup_id"], "failed")]
    assert "already exists" in stored[1]["error"] and stored[0]["error"] is None
    assert len(names) == 2 and not still_connected(redis_client, names)


def test_an_unreachable_mongodb_fails_a_backup_in_one_error(in_process: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXFLOW_MONGO_URI", "mongodb://127.0.0.1:1/")
    get_settings.cache_clear()
    with pytest.raises(ServiceError, match="MongoDB unreachable"):  # a dump task's raw ServerSelectionTimeoutError before
        backup_nightly()


def test_restore_into_the_live_database_clears_its_cached_predictions(
    in_process: Settings, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    backup_id = backup_nightly()["backup_id"]
    live, other = (PredictionCache(redis_client, ttl_s=60, database=name) for name in (in_process.mongo_db, f"{in_process.mongo_db}_other"))
    doc = {"audio_sha256": uuid.uuid4().hex * 2, "model_version": "m1", "score": 0.5, "label": "healthy"}
    live.put_many([doc])
    other.put_many([doc])
    names = name_redis_clients(monkeypatch, flows.backup)
    restore_backup(in_process, backup_id, into=in_process.mongo_db, drop=True)
    assert live.get_many([doc["audio_sha256"]], "m1") == {}, "predictions of dropped documents are still cached"
    assert other.get_many([doc["audio_sha256"]], "m1") == {doc["audio_sha256"]: doc}
    assert len(names) == 1 and not still_connected(redis_client, names)


def test_restore_is_refused_while_a_run_is_running_in_the_target_unless_forced(in_process: Settings) -> None:
    backup_id = backup_nightly()["backup_id"]
    me = psutil.Process()
    db = pymongo.MongoClient(services.mongo_uri(in_process))[in_process.mongo_db]
    db.runs.insert_one({"run_id": "r-live", "status": "running", "host": socket.gethostname(), "pid": me.pid, "pid_started": me.create_time()})
    db.predictions.insert_one({"audio_sha256": "a" * 64, "model_version": "m1", "run_id": "r-live"})  # stored after the backup
    with pytest.raises(LockError, match=rf"^not restoring into database {in_process.mongo_db} while runs are running \(1: r-live \(pid {me.pid} on "):
        restore_backup(in_process, backup_id, into=in_process.mongo_db, drop=True)
    assert db.predictions.count_documents({"run_id": "r-live"}) == 1  # nothing replaced
    restore_backup(in_process, backup_id, into=in_process.mongo_db, drop=True, force=True)
    assert db.predictions.count_documents({"run_id": "r-live"}) == 0 and db.runs.count_documents({"run_id": "r-live"}) == 0


def test_a_refused_backup_completes_as_skipped(in_process: Settings, cli_env: dict[str, str], redis_client: redis.Redis) -> None:
    with hold_lock(redis_client, "backup", ttl_s=30) as held:
        # A refusal, not a failure: a Failed flow run printed the LockError's traceback twice in a worker's log.
        state = backup_nightly(return_state=True)
    assert state.is_completed(), state
    assert state.result() == {"status": "skipped", "reason": f"another backup run is in progress (lock voxflow:lock:backup held by {held.token})"}
    assert env_db(cli_env)["backups"].count_documents({}) == 0
