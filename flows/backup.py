"""Nightly backup (dump, verify by restoring into a scratch database, prune) and restore."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from typing import Any

from fsspec import AbstractFileSystem
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pymongo import MongoClient
from pymongo.errors import PyMongoError

import voxflow
from flows.run_log import send_to_run_log
from store.backup import (
    backup_name,
    compare_with_manifest,
    list_backups,
    mark_pruned,
    open_location,
    prune_backups,
    record_backup,
    remove_backup,
    resolve_backup,
    restore_database,
    restore_models,
    verify_files,
    write_backup,
)
from store.cache import PredictionCache, connect_redis
from store.locks import BACKUP_LOCK, hold_lock
from store.mongo import ResultStore, connect_mongo, connection_errors_as_service_error, failure_reason
from store.runs import refuse_while_running
from tasks.erasure import erase_again
from voxflow import services
from voxflow.errors import BackupError, LockError
from voxflow.settings import Settings, get_settings


def scratch_database(live: str, backup_id: str, purpose: str) -> str:
    """Name of the scratch database a backup is restored into for ``purpose`` ("verify", "restore").

    Examples
    --------
    >>> scratch_database("voxflow", "2026-11-27T020000Z", "restore")
    'voxflow_restore_20261127T020000Z'
    """
    return f"{live}_{purpose}_{backup_id.replace('-', '')}"


@task(name="dump-backup", cache_policy=NO_CACHE)
def dump_backup(client: MongoClient, settings: Settings, folder: str, uri: str) -> dict[str, Any]:
    """Write the dated backup folder; mongodump only when asked for and on PATH."""
    use_mongodump = settings.backup_use_mongodump and shutil.which("mongodump") is not None
    if settings.backup_use_mongodump and not use_mongodump:
        get_run_logger().warning("VOXFLOW_BACKUP_USE_MONGODUMP is set but mongodump is not on PATH: dumping with pymongo")
    fs, _ = open_location(settings.backup_location)
    return write_backup(
        client[settings.mongo_db], fs, folder,
        models_dir=settings.models_dir, feature_store_dir=settings.feature_store_dir,
        source=services.redact(uri), version=voxflow.__version__,
        mongodump_uri=uri if use_mongodump else None,
    )


@task(name="verify-backup", cache_policy=NO_CACHE)
def verify_backup(client: MongoClient, settings: Settings, folder: str, backup_id: str) -> list[str]:
    """Check every file, restore into a scratch database, compare counts, checksums and indexes; drop it."""
    fs, _ = open_location(settings.backup_location)
    manifest = verify_files(fs, folder)
    scratch = scratch_database(settings.mongo_db, backup_id, "verify")
    try:
        restore_database(fs, folder, manifest, client[scratch], drop=True)
        return compare_with_manifest(client[scratch], manifest)
    finally:
        client.drop_database(scratch)


@flow(name="backup-nightly")
def backup_nightly() -> dict[str, Any]:
    """Back up the voxflow database, models and feature manifest; verify; apply retention.

    One run at a time (Redis lock ``voxflow:lock:backup``): a second trigger is refused, and completes as
    ``{"status": "skipped", "reason": ...}``. The result is recorded in the ``backups`` collection whether it
    succeeds or fails. A failed run removes only the
    folder it created; a failure to prune old backups is logged and recorded and keeps the new backup.

    Returns
    -------
    dict
        The ``backups`` record: backup_id, path, counts, verified, status, removed (pruned backups), prune_error.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    uri = services.mongo_uri(settings)
    client = connect_mongo(uri)
    try:
        with connection_errors_as_service_error(f"database {settings.mongo_db}"), connect_redis(
            services.redis_url(settings)
        ) as redis_client, hold_lock(redis_client, BACKUP_LOCK, ttl_s=settings.lock_ttl_s):
            client.admin.command("ping")  # a server that is down is one line now, not a dump task's traceback
            record = _take_backup(client, settings, uri)
    except LockError as exc:
        # A refusal, not a failure: the flow run completes with this one line (a scheduler's trigger during a long run).
        logger.warning("Backup refused: %s", exc.reason)
        return {"status": "skipped", "reason": exc.reason}
    finally:
        client.close()
    logger.info(
        "Backup %s verified: %d documents in %s; removed %s",
        record["backup_id"], sum(record["counts"].values()), record["path"], ", ".join(record["removed"]) or "nothing",
    )
    return record


def _take_backup(client: MongoClient, settings: Settings, uri: str) -> dict[str, Any]:
    """Dump, verify, then prune (the caller holds the lock); record the outcome in ``backups``.

    Raises
    ------
    BackupError
        When the dump or its verification fails (also when the backup's folder already exists).
    """
    started_at = datetime.now(timezone.utc)
    backup_id = backup_name(started_at)
    fs, root = open_location(settings.backup_location)
    folder = f"{root}/{backup_id}"
    db = client[settings.mongo_db]
    record: dict[str, Any] = {
        "backup_id": backup_id, "started_at": started_at,
        "path": services.redact(f"{settings.backup_location.rstrip('/')}/{backup_id}"),
        "verified": False, "error": None,
    }
    created = False
    try:
        # write_backup refuses a folder that exists (names go down to the second): that one is not ours to remove.
        created = not fs.exists(folder)
        manifest = dump_backup(client, settings, folder, uri)
        record["counts"] = {name: entry["count"] for name, entry in manifest["collections"].items()}
        differences = verify_backup(client, settings, folder, backup_id)
        if differences:
            raise BackupError(f"backup {backup_id} failed verification: " + "; ".join(differences))
        record["verified"] = True
    except BaseException as exc:
        if created:
            remove_backup(fs, folder)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=datetime.now(timezone.utc))
        try:
            record_backup(db, record)
        except PyMongoError as record_failed:  # the server that failed the backup may refuse its record too: the backup's error says more
            get_run_logger().error("Backup %s failed and its failure could not be recorded: %s", backup_id, failure_reason(record_failed))
        raise
    record.update(status="verified", **_apply_retention(fs, root, settings, backup_id), finished_at=datetime.now(timezone.utc))
    record_backup(db, record)
    mark_pruned(db, record["removed"], at=record["finished_at"])
    return record


def _apply_retention(fs: AbstractFileSystem, root: str, settings: Settings, backup_id: str) -> dict[str, Any]:
    """Prune old backups; a failure is logged and returned, never raised: the new backup ``backup_id`` stays.

    Returns
    -------
    dict
        removed (names pruned) and prune_error (None, or what stopped the pruning).
    """
    try:
        return {"removed": prune_backups(fs, root, keep_daily=settings.backup_keep_daily, keep_weekly=settings.backup_keep_weekly), "prune_error": None}
    except Exception as exc:
        get_run_logger().error("Backup %s is verified and kept, but pruning old backups failed: %s: %s", backup_id, type(exc).__name__, exc)
        return {"removed": [], "prune_error": f"{type(exc).__name__}: {exc}"}


def restore_backup(settings: Settings, wanted: str, *, into: str | None = None, drop: bool = False, force: bool = False) -> dict[str, Any]:
    """Restore the backup ``wanted`` (name, day or "latest") into a scratch database, or replace one with ``drop``;
    refused while runs are recorded running in the target (what they store would be lost), unless ``force``.

    Runs without Prefect on purpose: recovering must not depend on the orchestrator's own database.
    Every file's checksum is checked before anything is written; the target's cached predictions are cleared; the
    recordings erased by ``voxflow forget`` (recorded in the backup or, since, in the live database) are erased
    again. Replacing the live database (``settings.mongo_db``) needs ``drop`` and also puts the backed-up model
    files back under ``models_dir``.

    Returns
    -------
    dict
        backup_id, database, counts per collection, erased_again (predictions, quarantine records and labels of
        recordings ``voxflow forget`` erased, taken out again), models_restored (files).

    Raises
    ------
    BackupError
        When the backup is missing or corrupt, the target is occupied without ``drop``, or the restored
        documents differ from the backup.
    LockError
        When another backup or restore holds the lock, or runs are running in the target.
    """
    fs, root = open_location(settings.backup_location)
    backup_id = resolve_backup(list_backups(fs, root), wanted)
    target = into or scratch_database(settings.mongo_db, backup_id, "restore")
    live = target == settings.mongo_db
    if live and not drop:
        raise BackupError(f"restoring into the live database {target} replaces it: pass --drop, or leave out --into to restore into a scratch database")
    folder = f"{root}/{backup_id}"
    client = connect_mongo(services.mongo_uri(settings))
    try:
        with connection_errors_as_service_error(f"database {target}"), connect_redis(
            services.redis_url(settings)
        ) as redis_client, hold_lock(redis_client, BACKUP_LOCK, ttl_s=settings.lock_ttl_s):
            manifest = verify_files(fs, folder)
            refuse_while_running(ResultStore(client[target]), f"restoring into database {target}", harm="lost", force=force)
            # Predictions cached for documents the restore drops would make analyze skip their files.
            PredictionCache(redis_client, ttl_s=settings.cache_ttl_s, database=target).clear()
            counts = restore_database(fs, folder, manifest, client[target], drop=drop)
            differences = compare_with_manifest(client[target], manifest)
            if differences:
                raise BackupError(f"database {target} differs from backup {backup_id} after the restore: " + "; ".join(differences))
            erased = erase_again(client[target], client[settings.mongo_db])
            models = restore_models(fs, folder, manifest, settings.models_dir) if live else 0
    finally:
        client.close()
    return {"backup_id": backup_id, "database": target, "counts": counts, "erased_again": erased, "models_restored": models}
