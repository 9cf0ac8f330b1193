"""Backups of the voxflow database: dated folders of gzipped BSON, checked file by file, restorable.

A backup folder (``2026-11-27T020000Z``) under a local path or fsspec URL holds::

    manifest.json            counts, checksums, indexes, sha256 of every file below, version, source
    manifest.json.sha256     sha256 of manifest.json
    mongo/<collection>.bson.gz   the documents, ``bson.encode`` concatenated (mongodump's .bson), gzipped
    models/...               the model registry folder, file for file
    features-manifest.json   the Parquet feature store's files (path, bytes), not their contents

Consistency: nx-27017 has no snapshots or transactions, so each collection is capped at a high-water
mark taken before any is read: its largest ObjectId ``_id``. Documents inserted later get larger ids and
are left out; each document is read whole, so none is ever half in. Limits: a document inserted during
the backup whose ObjectId (another process, same second) sorts below the mark is in; documents with
non-ObjectId ids are always in; updates and deletes during the backup may or may not show; collections
are not consistent with each other.

The ``prediction_counts`` and ``score_counts`` rollups are derived from ``predictions`` and ``quarantine``:
they are not backed up, and a restore rebuilds them from the restored documents (so they always match them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

import bson
import bson.errors
import bson.json_util
import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from store.counts import rebuild_counts
from store.erasures import ERASURES
from store.feature_store import FeatureStore
from voxflow.errors import BackupError

log = logging.getLogger(__name__)

CATALOGUE = "backups"  # which backups exist
# Records a restore adds what it lacks from, never rolls back with the data: which backups exist, what was erased.
MERGED = (CATALOGUE, ERASURES)
COLLECTIONS = ("predictions", "runs", "quarantine", "scaling_events", "labels", "models", *MERGED)
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
NAME_FORMAT = "%Y-%m-%dT%H%M%SZ"

_NAME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z$")
_RAW = CodecOptions(document_class=RawBSONDocument)
_DECODE = CodecOptions(tz_aware=True, tzinfo=timezone.utc)
# Documents per read batch and the most bytes per insert batch: what bounds memory, whatever the collection size.
_READ_BATCH = 100
_INSERT_BYTES = 4 << 20
_INSERT_DOCS = 1000
_CHUNK = 1 << 20
_DIGEST_MOD = 1 << 256
# Index options that are part of the server's bookkeeping, not of the index definition.
_INDEX_BOOKKEEPING = ("v", "ns", "key")


@dataclass(frozen=True)
class CollectionDigest:
    """Count and order-independent checksum of a collection's documents.

    ``checksum`` is the sum modulo 2**256 of the sha256 of each document's canonical BSON (keys sorted,
    integers by value), as hex: equal for the same documents in any order, computed in constant memory.
    """

    count: int
    checksum: str


def backup_name(at: datetime) -> str:
    """The folder name of a backup taken at ``at``.

    Examples
    --------
    >>> backup_name(datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc))
    '2026-11-27T020000Z'
    """
    return at.astimezone(timezone.utc).strftime(NAME_FORMAT)


def parse_backup_name(name: str) -> datetime | None:
    """The UTC time a backup folder name stands for, or None when ``name`` is not one."""
    if not _NAME_RE.match(name):
        return None
    try:
        return datetime.strptime(name, NAME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def select_retained(names: Iterable[str], *, keep_daily: int, keep_weekly: int) -> set[str]:
    """The backups a keep-N-daily, keep-M-weekly policy keeps (pure).

    The newest backup of each of the ``keep_daily`` most recent days that have one is kept, and the
    newest of each of the ``keep_weekly`` most recent ISO weeks; a backup picked by either is kept.
    Names that are not backup names are never selected (and so never removed by the caller).

    Examples
    --------
    >>> sorted(select_retained(["2026-11-26T020000Z", "2026-11-27T020000Z", "2026-11-27T140000Z"], keep_daily=1, keep_weekly=0))
    ['2026-11-27T140000Z']
    """
    dated = sorted(((when, name) for name in names if (when := parse_backup_name(name)) is not None), reverse=True)
    kept: set[str] = set()
    for period, keep in ((lambda t: t.date(), keep_daily), (lambda t: t.isocalendar()[:2], keep_weekly)):
        seen: set[Any] = set()
        for when, name in dated:
            key = period(when)
            if key in seen:
                continue
            if len(seen) == keep:
                break
            seen.add(key)
            kept.add(name)
    return kept


def open_location(location: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and root path of a backup location (a local path or a URL)."""
    return url_to_fs(location)


def list_backups(fs: AbstractFileSystem, root: str) -> list[str]:
    """Names of the complete backups (those with a manifest) under ``root``, oldest first."""
    if not fs.exists(root):
        return []
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(root, detail=False)]
    return sorted(name for name in names if parse_backup_name(name) and fs.exists(f"{root}/{name}/{MANIFEST}"))


def resolve_backup(names: Iterable[str], wanted: str) -> str:
    """The backup ``wanted`` names: a full name, a day (``2026-11-27``, its newest) or ``latest``.

    Raises
    ------
    BackupError
        When no backup matches.
    """
    ordered = sorted(names)
    matches = ordered if wanted == "latest" else [name for name in ordered if name == wanted or name.startswith(f"{wanted}T")]
    if not matches:
        known = ", ".join(reversed(ordered[-5:])) or "none"
        raise BackupError(f"no backup matches {wanted!r} (newest first: {known})")
    return matches[-1]


def collection_digest(collection: Collection) -> CollectionDigest:
    """Count and checksum of every document in ``collection``, streamed."""
    total, count = 0, 0
    for raw in collection.with_options(codec_options=_RAW).find(batch_size=_READ_BATCH):
        total = (total + _document_hash(raw.raw)) % _DIGEST_MOD
        count += 1
    return CollectionDigest(count, f"{total:064x}")


def write_backup(
    db: Database,
    fs: AbstractFileSystem,
    folder: str,
    *,
    models_dir: Path,
    feature_store_dir: Path,
    source: str,
    version: str,
    mongodump_uri: str | None = None,
) -> dict[str, Any]:
    """Dump every voxflow collection, the model registry and the feature store's manifest into ``folder``.

    Parameters
    ----------
    db : pymongo.database.Database
        The database to back up.
    fs, folder : fsspec filesystem and path
        Where to write; ``folder`` must not exist yet.
    models_dir, feature_store_dir : Path
        The model registry and Parquet feature store (``settings.models_dir``, ``settings.feature_store_dir``).
    source : str
        Where the data comes from, already redacted (recorded in the manifest).
    version : str
        voxflow's version, recorded in the manifest.
    mongodump_uri : str, optional
        Dump with the ``mongodump`` tool at this URI instead of pymongo.

    Returns
    -------
    dict
        The manifest written last, as ``manifest.json``.
    """
    if fs.exists(folder):
        raise BackupError(f"backup folder {folder} already exists")
    fs.makedirs(f"{folder}/mongo", exist_ok=True)
    started_at = datetime.now(timezone.utc)
    existing = set(db.list_collection_names())
    marks = {name: _high_water_mark(db[name]) for name in COLLECTIONS}
    files: dict[str, dict[str, Any]] = {}
    collections: dict[str, dict[str, Any]] = {}
    for name in COLLECTIONS:
        relative = f"mongo/{name}.bson.gz"
        if mongodump_uri is not None:
            digest, entry = _mongodump_collection(mongodump_uri, db.name, name, marks[name], fs, f"{folder}/{relative}")
        else:
            digest, entry = _dump_collection(db[name], marks[name], fs, f"{folder}/{relative}")
        files[relative] = entry
        collections[name] = {
            "file": relative,
            "count": digest.count,
            "checksum": digest.checksum,
            "high_water_id": str(marks[name]) if marks[name] is not None else None,
            "indexes": _index_specs(db[name]) if name in existing else [],
        }
        log.info("backed up %s: %d documents", name, digest.count)
    files.update(_copy_tree(models_dir, fs, folder, "models"))
    features = json.dumps(_feature_files(feature_store_dir), indent=2).encode()
    fs.pipe_file(f"{folder}/features-manifest.json", features)
    files["features-manifest.json"] = {"sha256": hashlib.sha256(features).hexdigest(), "bytes": len(features)}
    manifest = {
        "format": 1,
        "backup_id": folder.rstrip("/").rsplit("/", 1)[-1],
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "voxflow_version": version,
        "source": {"server": source, "database": db.name},
        "method": "mongodump" if mongodump_uri is not None else "pymongo",
        "collections": collections,
        "files": files,
    }
    body = json.dumps(manifest, indent=2).encode()
    fs.pipe_file(f"{folder}/{MANIFEST}", body)
    fs.pipe_file(f"{folder}/{MANIFEST_SUM}", f"{hashlib.sha256(body).hexdigest()}  {MANIFEST}\n".encode())
    return manifest


def verify_files(fs: AbstractFileSystem, folder: str) -> dict[str, Any]:
    """Check the manifest and the sha256 of every file it lists, reading each file in full.

    Returns
    -------
    dict
        The manifest, once every check passed.

    Raises
    ------
    BackupError
        Naming every missing or corrupt file; nothing has been changed anywhere.
    """
    try:
        body = fs.cat_file(f"{folder}/{MANIFEST}")
        expected = fs.cat_file(f"{folder}/{MANIFEST_SUM}").decode().split()[0]
    except (FileNotFoundError, IndexError, UnicodeDecodeError) as exc:
        raise BackupError(f"backup {folder} is incomplete: its manifest or manifest checksum is missing or empty") from exc
    if hashlib.sha256(body).hexdigest() != expected:
        raise BackupError(f"backup {folder} is corrupt: {MANIFEST} does not match {MANIFEST_SUM}")
    manifest = json.loads(body)
    problems = []
    for relative, entry in manifest["files"].items():
        path = f"{folder}/{relative}"
        if not fs.exists(path):
            problems.append(f"{relative} is missing")
            continue
        with fs.open(path, "rb") as handle:
            if _sha256_of(handle) != entry["sha256"]:
                problems.append(f"{relative} fails its sha256 check")
    if problems:
        raise BackupError(f"backup {folder} is corrupt, nothing was restored: " + "; ".join(problems))
    return manifest


def restore_database(fs: AbstractFileSystem, folder: str, manifest: Mapping[str, Any], db: Database, *, drop: bool) -> dict[str, int]:
    """Load a verified backup's collections and indexes into ``db``, then rebuild its rollups (:mod:`store.counts`).

    The ``backups`` catalogue and the ``erasures`` records are merged, not replaced: the target keeps the records
    of backups taken and recordings erased after this one (restoring the live database had emptied ``voxflow backup
    --list``) and gains the backup's records it lacks (a new server's).

    Parameters
    ----------
    manifest : mapping
        What :func:`verify_files` returned for ``folder``: call it first.
    drop : bool
        Replace collections that already hold documents; without it such a target is refused untouched.

    Returns
    -------
    dict
        Documents restored per collection (for the catalogue: records added).
    """
    collections = manifest["collections"]
    occupied = [name for name in collections if name not in MERGED and db[name].estimated_document_count() > 0]
    if occupied and not drop:
        raise BackupError(
            f"database {db.name} already has documents in {', '.join(occupied)}; pass --drop to replace them or restore --into another database"
        )
    counts = {}
    for name, entry in collections.items():
        target = db[name]
        if drop and name not in MERGED:
            target.drop()
        with fs.open(f"{folder}/{entry['file']}", "rb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="rb") as stream:
            documents = bson.decode_file_iter(stream, codec_options=_RAW)
            counts[name] = _insert_stream(target, _unrecorded(target, documents) if name in MERGED else documents)
        for spec in entry["indexes"]:
            target.create_index(spec["key"], **spec["options"])
        if name not in MERGED and counts[name] != entry["count"]:
            raise BackupError(f"restoring {name} into {db.name} stored {counts[name]} documents, the backup holds {entry['count']}")
    rebuild_counts(db)
    return counts


def compare_with_manifest(db: Database, manifest: Mapping[str, Any]) -> list[str]:
    """Differences between ``db`` and a backup's manifest: counts, checksums and indexes per collection.

    Returns
    -------
    list of str
        One line per difference; empty when ``db`` holds exactly the backed-up documents.
    """
    differences = []
    for name, entry in manifest["collections"].items():
        if name in MERGED:  # merged by a restore, not replaced: it may hold records the backup does not
            continue
        digest = collection_digest(db[name])
        if digest.count != entry["count"]:
            differences.append(f"{name}: {digest.count} documents, backup has {entry['count']}")
        elif digest.checksum != entry["checksum"]:
            differences.append(f"{name}: same count, different documents (checksum)")
        restored = {_index_key(spec) for spec in (_index_specs(db[name]) if entry["indexes"] else [])}
        missing = [spec["key"] for spec in entry["indexes"] if _index_key(spec) not in restored]
        if missing:
            differences.append(f"{name}: indexes missing {missing}")
    return differences


def restore_models(fs: AbstractFileSystem, folder: str, manifest: Mapping[str, Any], models_dir: Path) -> int:
    """Put a verified backup's model registry files back under ``models_dir``; other files are kept.

    Returns
    -------
    int
        Files written.
    """
    written = 0
    for relative in manifest["files"]:
        if not relative.startswith("models/"):
            continue
        target = models_dir / relative.removeprefix("models/")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with fs.open(f"{folder}/{relative}", "rb") as source, open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        os.replace(tmp, target)
        written += 1
    return written


def prune_backups(fs: AbstractFileSystem, root: str, *, keep_daily: int, keep_weekly: int) -> list[str]:
    """Remove the complete backups the retention policy does not keep, and leftovers of failed ones.

    A dated folder without a manifest older than the newest complete backup is a leftover.

    Returns
    -------
    list of str
        Names removed.
    """
    complete = list_backups(fs, root)
    kept = select_retained(complete, keep_daily=keep_daily, keep_weekly=keep_weekly)
    newest = complete[-1] if complete else ""
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(root, detail=False)] if fs.exists(root) else []
    leftovers = [name for name in names if parse_backup_name(name) and name not in complete and name < newest]
    removed = sorted([name for name in complete if name not in kept] + leftovers)
    for name in removed:
        fs.rm(f"{root}/{name}", recursive=True)
    return removed


def remove_backup(fs: AbstractFileSystem, folder: str) -> None:
    """Delete one backup folder (a failed or unverified one)."""
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def record_backup(db: Database, record: Mapping[str, Any]) -> None:
    """Insert the ``backups`` document of one backup run (``record`` itself is left without an ``_id``).

    Each run has a document of its own, also a run refused because its folder name was taken: an upsert
    on ``backup_id`` would overwrite that folder's verified record with the failure (and on nx-27017,
    which compares date-like strings as dates, it never matches a name like ``2026-11-27T020000Z``).
    """
    db["backups"].insert_one(dict(record))


def mark_pruned(db: Database, names: Sequence[str], *, at: datetime) -> None:
    """Mark the verified ``backups`` records of the backups ``names`` as ``pruned``: their folders are gone.

    Found by ``_id``: nx-27017 reads a name like ``2026-11-27T020000Z`` in a query as a date, and matches nothing.
    """
    if not names:
        return
    wanted = set(names)
    ids = [doc["_id"] for doc in db["backups"].find({"status": "verified"}, {"backup_id": 1}) if doc.get("backup_id") in wanted]
    if ids:
        db["backups"].update_many({"_id": {"$in": ids}}, {"$set": {"status": "pruned", "pruned_at": at.isoformat()}})


def recent_backups(db: Database, *, limit: int = 20) -> list[dict[str, Any]]:
    """``backups`` documents, newest first, without ``_id`` (what the dashboard shows)."""
    cursor = db["backups"].find({}, {"_id": 0}).sort([("started_at", pymongo.DESCENDING)]).limit(limit)
    return list(cursor)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        # Int64 and int32 of the same value are one number: servers may store either width.
        return int(value)
    return value


def _document_hash(raw: bytes) -> int:
    canonical = bson.encode(_canonical(bson.decode(raw, codec_options=_DECODE)))
    return int.from_bytes(hashlib.sha256(canonical).digest(), "big")


def _high_water_mark(collection: Collection) -> ObjectId | None:
    newest = collection.find_one({}, {"_id": 1}, sort=[("_id", pymongo.DESCENDING)])
    return newest["_id"] if newest is not None and isinstance(newest["_id"], ObjectId) else None


class _HashingWriter:
    """A write-only file that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    def entry(self) -> dict[str, Any]:
        return {"sha256": self.sha256.hexdigest(), "bytes": self.bytes}


def _dump_collection(collection: Collection, mark: ObjectId | None, fs: AbstractFileSystem, path: str) -> tuple[CollectionDigest, dict[str, Any]]:
    total, count = 0, 0
    with fs.open(path, "wb") as out:
        writer = _HashingWriter(out)
        with gzip.GzipFile(fileobj=writer, mode="wb", mtime=0) as stream:  # type: ignore[arg-type]
            # nx-27017 does not compare ObjectIds in queries ($lte matches nothing): filter here.
            for raw in collection.with_options(codec_options=_RAW).find(batch_size=_READ_BATCH):
                _id = raw["_id"]
                if mark is not None and isinstance(_id, ObjectId) and _id > mark:
                    continue
                stream.write(raw.raw)
                total = (total + _document_hash(raw.raw)) % _DIGEST_MOD
                count += 1
    return CollectionDigest(count, f"{total:064x}"), writer.entry()


def _mongodump_collection(
    uri: str, database: str, name: str, mark: ObjectId | None, fs: AbstractFileSystem, path: str
) -> tuple[CollectionDigest, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="voxflow-mongodump-") as tmp:
        # The URI goes in a private config file, not argv, where other users could read a password.
        config = Path(tmp) / "config.yaml"
        config.touch(mode=0o600)
        config.write_text(f"uri: {json.dumps(uri)}\n")
        argv = ["mongodump", f"--config={config}", f"--db={database}", f"--collection={name}", f"--out={tmp}", "--gzip", "--quiet"]
        if mark is not None:
            argv.append(f"--query={json.dumps({'_id': {'$lte': {'$oid': str(mark)}}})}")
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"mongodump of {name} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        dumped = Path(tmp) / database / f"{name}.bson.gz"
        if not dumped.exists():  # mongodump writes nothing for a collection that does not exist
            with gzip.open(dumped, "wb", mtime=0):
                pass
        total, count = 0, 0
        with gzip.open(dumped, "rb") as stream:
            for raw in bson.decode_file_iter(stream, codec_options=_RAW):
                total = (total + _document_hash(raw.raw)) % _DIGEST_MOD
                count += 1
        with open(dumped, "rb") as source, fs.open(path, "wb") as out:
            writer = _HashingWriter(out)
            shutil.copyfileobj(source, writer, _CHUNK)  # type: ignore[misc]
    return CollectionDigest(count, f"{total:064x}"), writer.entry()


def _unrecorded(collection: Collection, documents: Iterator[RawBSONDocument]) -> Iterator[RawBSONDocument]:
    """The ``documents`` whose ``_id`` ``collection`` does not hold yet."""
    held = {doc["_id"] for doc in collection.find({}, {"_id": 1})}
    return (document for document in documents if document["_id"] not in held)


def _insert_stream(collection: Collection, documents: Iterator[RawBSONDocument]) -> int:
    inserted, size = 0, 0
    batch: list[RawBSONDocument] = []
    try:
        for document in documents:
            batch.append(document)
            size += len(document.raw)
            if size >= _INSERT_BYTES or len(batch) == _INSERT_DOCS:
                inserted += _insert_batch(collection, batch)
                batch, size = [], 0
        if batch:
            inserted += _insert_batch(collection, batch)
    except (PyMongoError, bson.errors.BSONError, OSError, EOFError) as exc:
        raise BackupError(f"restoring {collection.name} into {collection.database.name} failed after {inserted} documents: {exc}") from exc
    return inserted


def _insert_batch(collection: Collection, batch: list[RawBSONDocument]) -> int:
    # pymongo leaves inserted_ids empty for raw documents; an acknowledged insert_many stored them all.
    collection.insert_many(batch, ordered=False)
    return len(batch)


def _index_specs(collection: Collection) -> list[dict[str, Any]]:
    specs = []
    for name, info in sorted(collection.index_information().items()):
        if name == "_id_":
            continue
        options = {key: value for key, value in info.items() if key not in _INDEX_BOOKKEEPING}
        specs.append({"key": [[field, direction] for field, direction in info["key"]], "options": {"name": name, **options}})
    return json.loads(bson.json_util.dumps(specs))


def _index_key(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(tuple(pair) for pair in spec["key"]), bool(spec["options"].get("unique", False))


def _copy_tree(source: Path, fs: AbstractFileSystem, folder: str, prefix: str) -> dict[str, dict[str, Any]]:
    entries = {}
    if not source.is_dir():
        return entries
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        # Dot-names are staging folders and temporary files of writers in progress.
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        target = f"{folder}/{prefix}/{relative.as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with open(path, "rb") as handle, fs.open(target, "wb") as out:
            writer = _HashingWriter(out)
            shutil.copyfileobj(handle, writer, _CHUNK)  # type: ignore[misc]
        entries[f"{prefix}/{relative.as_posix()}"] = writer.entry()
    return entries


def _feature_files(root: Path) -> list[dict[str, Any]]:
    """The feature store's chunk files and merged parts, every version's, by path."""
    store = FeatureStore(root)
    files = sorted(file for version in store.versions() for file in store.dated_files(feature_version=version))
    return [{"path": path.relative_to(root).as_posix(), "bytes": stat.st_size} for path, stat in files]


def _sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
