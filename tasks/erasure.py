"""Forget recordings: remove what voxflow holds about them (a participant who withdrew, audio stored by mistake).

A recording is known by its content (``audio_sha256``), by the path it was listed under and by the subject it was
listed with. :func:`find_recordings` turns what an operator names into all three; :func:`forget` removes them from
every store voxflow writes: the intake queue, its latency samples and the cached predictions (Redis), the feature store (Parquet), the
labels, quarantine records and predictions (MongoDB), in that order, so that a forget cut short finds the rest again from what is left.
What it cannot remove it names: models trained on the recordings, and backups taken before.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from contextlib import ExitStack
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import redis
from pymongo.database import Database

from models.artifact import read_bundle, read_training_hashes
from models.registry import SHIPPED_DIR
from store.backup import list_backups, open_location
from store.cache import PredictionCache, connect_redis
from store.erasures import erased_contents, erased_quarantine_ids, record_erasure
from store.feature_store import FeatureStore
from store.labels import LabelStore
from store.latency import LatencyLog
from store.locks import BACKUP_LOCK, DRAIN_LOCK, FEATURE_STORE_LOCK, RETRAIN_LOCK, RedisLock, hold_lock, lock_key, wanting
from store.models import ModelStore
from store.mongo import ResultStore, open_database
from store.queue import FileQueue
from store.runs import refuse_while_running
from tasks.ingest import Unreadable, content_hash, list_source
from voxflow import services
from voxflow.errors import LockError, ModelError, SourceError, VoxflowError
from voxflow.settings import Settings

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODELS_LISTED = 100_000
# Whatever else writes the stores waits meanwhile: a drain could analyse a queued recording (it is asked to pause
# instead of refusing the forget), a backup copy it, a retrain train on it, a compaction keep the feature rows a rewrite dropped.
LOCKS = (BACKUP_LOCK, RETRAIN_LOCK, FEATURE_STORE_LOCK)


@dataclass(frozen=True)
class Listed:
    """What one ``--path`` SOURCE names: the paths the stores would hold its files under, and their contents where readable."""

    paths: frozenset[str]
    hashes: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()  # ending in a slash: a source no longer on disk may have been a folder


@dataclass(frozen=True)
class Named:
    """The recordings an operator named: content hashes, sources (``--path``) and subjects."""

    hashes: frozenset[str] = frozenset()
    sources: dict[str, Listed] = field(default_factory=dict)
    subjects: frozenset[str] = frozenset()

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(path for listed in self.sources.values() for path in listed.paths)

    @property
    def folders(self) -> frozenset[str]:
        return frozenset(folder for listed in self.sources.values() for folder in listed.folders)


@dataclass(frozen=True)
class Recordings:
    """The recordings to forget: their contents, and the paths and subjects they were listed under."""

    hashes: frozenset[str]
    paths: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Erasure:
    """What :func:`forget` removed (or would remove, in a dry run) from each store, and what still holds the recordings."""

    recordings: int  # contents some store held
    queued: int  # queue entries, waiting or left pending by a dead drain
    latency_samples: int  # of the queue's latency metric, which name their file
    predictions: int
    quarantine: int
    labels: int
    cached: int
    feature_rows: int
    feature_files_rewritten: int
    feature_files_removed: int
    unreadable_feature_files: tuple[str, ...]
    trained_on: tuple[str, ...]  # model versions whose training list holds some of the recordings
    training_unknown: tuple[str, ...]  # model versions without a readable training list
    backups: tuple[str, ...]  # backups that may hold the database as it was
    unmatched: tuple[str, ...]  # what was named that no store held: ``sha256 …``, ``path …``, ``subject …``
    dry_run: bool
    hashes: frozenset[str] = field(default=frozenset(), repr=False)  # every content looked for: what a restore erases again
    quarantine_ids: frozenset[Any] = field(default=frozenset(), repr=False)  # and the quarantine records it finds by _id

    def as_dict(self) -> dict[str, Any]:
        """The report, without the contents looked for."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.__dict__.items() if name not in ("hashes", "quarantine_ids")}


def checked_hashes(values: Iterable[str]) -> frozenset[str]:
    """``values`` as sha256 digests (lower case).

    Raises
    ------
    VoxflowError
        Naming the first value that is not 64 hexadecimal digits.

    Examples
    --------
    >>> sorted(checked_hashes(["AB" * 32]))[0][:8]
    'abababab'
    """
    hashes = [value.strip().lower() for value in values]
    if bad := next((value for value in hashes if not _SHA256.match(value)), None):
        raise VoxflowError(f"--sha256 {bad!r} is not a sha256 (64 hexadecimal digits, as `voxflow results --json` shows audio_sha256)")
    return frozenset(hashes)


def listed(source: str, *, max_file_bytes: int) -> Listed:
    """The paths ``source`` names, as the stores hold them (absolute), and the contents of its files still readable.

    A source is read as ``analyze`` reads it (a file, folder, glob or manifest); one that is no longer there, or is
    no audio, names the path it was stored under, or the folder files were stored under.
    """
    try:
        candidates, rejected, _ = list_source(source)
    except SourceError:
        gone = os.path.abspath(os.path.expanduser(source))
        return Listed(frozenset([gone]), folders=frozenset([os.path.join(gone, "")]))
    hashes = set()
    for candidate in candidates:
        try:
            hashes.add(content_hash(Path(candidate.path), max_bytes=max_file_bytes)[0])
        except (Unreadable, OSError):  # its stored records are found by its path
            continue
    return Listed(frozenset({str(candidate.path) for candidate in candidates} | {rejection.path for rejection in rejected}), frozenset(hashes))


def named_recordings(hashes: Iterable[str], sources: Iterable[str], subjects: Iterable[str], *, max_file_bytes: int) -> Named:
    """What an operator named (``--sha256``, ``--path``, ``--subject``, or the flow's parameters), read.

    Raises
    ------
    VoxflowError
        When nothing is named, or a hash is not a sha256.
    """
    hashes, sources, subjects = list(hashes), list(sources), list(subjects)
    if not (hashes or sources or subjects):
        raise VoxflowError("name the recordings to forget: --sha256, --path or --subject")
    return Named(checked_hashes(hashes), {source: listed(source, max_file_bytes=max_file_bytes) for source in sources}, frozenset(subjects))


def erase(named: Named, settings: Settings, *, dry_run: bool, force: bool = False) -> dict[str, Any]:
    """Forget ``named`` on the configured stores, holding the locks of what else writes them (the drain's, once a
    running drain has paused for it, and :data:`LOCKS`) and refusing while runs are recorded running (a dry run does
    neither). Returns :class:`Erasure` as a dict, with ``closed_runs``: runs of this host whose process had ended,
    closed first as crashed.

    Raises
    ------
    LockError
        While one of :data:`LOCKS` is held, a drain does not pause within ``forget_drain_wait_s``, or runs other
        than a paused drain are running (unless ``force``).
    """
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db, connect_redis(services.redis_url(settings)) as client, ExitStack() as held:
        db.command("ping")  # an unreachable server is one line naming the database
        closed: list[str] = []
        if not dry_run:
            held.enter_context(wanting(client, DRAIN_LOCK, ttl_s=settings.lock_ttl_s))  # withdrawn last: the drain resumes once all is done
            _hold_drain_lock(held, client, settings)
            for name in LOCKS:
                held.enter_context(hold_lock(client, name, ttl_s=settings.lock_ttl_s))
            closed, _ = refuse_while_running(ResultStore(db), "forgetting recordings", harm="those recordings again", force=force, paused_wait=True)
        erasure = forget(
            named, db=db, queue=FileQueue(client), latency=LatencyLog(client, maxlen=settings.metrics_maxlen),
            cache=PredictionCache(client, ttl_s=settings.cache_ttl_s, database=settings.mongo_db),
            features=FeatureStore(settings.feature_store_dir), settings=settings, dry_run=dry_run,
        )
        if not dry_run:
            record_erasure(db, _record(named, erasure), erasure.hashes, erasure.quarantine_ids)
    return {**erasure.as_dict(), "closed_runs": closed}


def _hold_drain_lock(held: ExitStack, client: redis.Redis, settings: Settings) -> None:
    """Hold the drain lock in ``held``, waiting up to ``forget_drain_wait_s`` for a running drain, asked to pause
    (:func:`store.locks.wanting`), to finish its batch and let go of it."""
    wait_s = settings.forget_drain_wait_s
    if wait_s and (holder := RedisLock(client, DRAIN_LOCK, ttl_s=settings.lock_ttl_s).holder()):
        log.info("waiting up to %.0f s for the drain holding %s (%s) to finish its batch and pause", wait_s, lock_key(DRAIN_LOCK), holder)
    try:
        held.enter_context(hold_lock(client, DRAIN_LOCK, ttl_s=settings.lock_ttl_s, wait_s=wait_s))
    except LockError as exc:
        raise LockError(
            f"{exc.reason}, and it did not pause within {wait_s:.0f} s (VOXFLOW_FORGET_DRAIN_WAIT_S): its batch takes longer, "
            "or it runs a voxflow that does not pause for a forget"
        ) from None


def erase_again(target: Database, live: Database) -> dict[str, int]:
    """Erase from ``target``, just restored from a backup, the recordings that erasures recorded in it or in the
    ``live`` database (those since the backup) erased: their predictions, quarantine records (those of unreadable
    files by their ``_id``) and labels. What was
    erased stays erased whichever backup comes back. Returns how many of each went."""
    hashes = erased_contents(target) | erased_contents(live)
    forgotten = ResultStore(target).forget(hashes=hashes, quarantine_ids=erased_quarantine_ids(target) | erased_quarantine_ids(live))
    return {"predictions": forgotten.predictions, "quarantine": forgotten.quarantine, "labels": len(LabelStore(target).forget(hashes))}


def _record(named: Named, erasure: Erasure) -> dict[str, Any]:
    """The ``erasures`` record of ``erasure``: when, where, how much was named and removed; no path nor subject."""
    removed = {name: value for name, value in erasure.as_dict().items() if isinstance(value, int) and not isinstance(value, bool)}
    return {
        "at": datetime.now(timezone.utc), "host": socket.gethostname(), "pid": os.getpid(),
        "named": {"sha256": len(named.hashes), "paths": len(named.sources), "subjects": len(named.subjects)},
        **removed, "trained_on": list(erasure.trained_on), "backups": len(erasure.backups),
    }


def _counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one.

    Examples
    --------
    >>> _counted(1, "label"), _counted(0, "quarantine record")
    ('1 label', '0 quarantine records')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def erasure_lines(report: dict[str, Any], backup_location: str) -> list[str]:
    """What :func:`erase` did (or would do), and what still holds the recordings, for a person."""
    did = "would remove" if report["dry_run"] else "removed"
    lines = [f"closed abandoned run {run_id} as crashed (its process had ended)" for run_id in report["closed_runs"]]
    removed = [
        _counted(report["predictions"], "prediction"), _counted(report["quarantine"], "quarantine record"), _counted(report["labels"], "label"),
        f"{_counted(report['feature_rows'], 'feature row')} ({_counted(report['feature_files_rewritten'], 'file')} rewritten, {report['feature_files_removed']} deleted)",
        _counted(report["cached"], "cached prediction"), _counted(report["queued"], "queued file"), _counted(report["latency_samples"], "latency sample"),
    ]
    lines.append(f"{_counted(report['recordings'], 'recording')} found: {did} {', '.join(removed[:-1])} and {removed[-1]}")
    if report["unmatched"]:
        lines.append(f"nothing stored matches: {'; '.join(report['unmatched'])}")
    if report["unreadable_feature_files"]:
        lines.append(f"feature store files that could not be read, so may still hold them (delete them): {', '.join(report['unreadable_feature_files'])}")
    if report["trained_on"]:
        lines.append(f"trained on some of them, and unchanged: {', '.join(report['trained_on'])}; retrain without them (voxflow retrain) and roll such a champion back")
    if report["training_unknown"]:
        lines.append(f"whether these were trained on them cannot be told (no readable training list): {', '.join(report['training_unknown'])}")
    if report["backups"]:
        lines.append(
            f"{_counted(len(report['backups']), 'backup')} in {backup_location} (newest {report['backups'][-1]}): each holds the database "
            "as it was until retention prunes it (VOXFLOW_BACKUP_KEEP_DAILY, VOXFLOW_BACKUP_KEEP_WEEKLY) or it is deleted; restoring one "
            "erases these recordings again"
        )
    if report["dry_run"]:
        lines.append("dry run: nothing was removed")
    return lines


def find_recordings(named: Named, db: Database, features: FeatureStore) -> tuple[Recordings, set[tuple[str | None, ...]]]:
    """``named`` with the contents of every prediction, quarantine record, label and feature row stored under its
    paths or subjects (a recording listed under a subject is forgotten wherever else it was listed), and the
    (``audio_sha256``, ``path``, ``subject_id``) of those records."""
    under = {"paths": named.paths, "subjects": named.subjects, "folders": named.folders}
    found = ResultStore(db).listed_under(**under) | LabelStore(db).listed_under(**under) | features.listed_under(**under)
    hashes = named.hashes | {sha for listed in named.sources.values() for sha in listed.hashes} | {sha for sha, _, _ in found if sha}
    return Recordings(frozenset(hashes), named.paths, named.subjects, named.folders), found


def unmatched(named: Named, identities: set[tuple[str | None, ...]], held: frozenset[str]) -> list[str]:
    """What ``named`` names that no store held: a sha256 no record has, a source whose paths and contents none has,
    a subject none was listed with (``identities``: what was found under the paths and subjects; ``held``: the
    contents the stores held).

    Examples
    --------
    >>> named = Named(frozenset({"ab", "cd"}), {"/x.wav": Listed(frozenset({"/x.wav"}))}, frozenset({"S1", "S2"}))
    >>> unmatched(named, {("cd", "/y.wav", "S1")}, frozenset({"cd"}))
    ['sha256 ab', 'path /x.wav', 'subject S2']
    """
    stored_paths, stored_subjects = {path for _, path, _ in identities if path}, {subject for _, _, subject in identities}

    def matched(listed: Listed) -> bool:
        under = tuple(listed.folders)
        return bool(listed.paths & stored_paths or listed.hashes & held or (under and any(path.startswith(under) for path in stored_paths)))

    missing = [f"sha256 {sha}" for sha in sorted(named.hashes - held)]
    missing += [f"path {source}" for source, listed in named.sources.items() if not matched(listed)]
    return missing + [f"subject {subject}" for subject in sorted(named.subjects - stored_subjects)]


def forget(
    named: Named, *, db: Database, queue: FileQueue, latency: LatencyLog, cache: PredictionCache, features: FeatureStore, settings: Settings,
    dry_run: bool,
) -> Erasure:
    """Remove the recordings ``named`` names from every store (nothing with ``dry_run``), and name what still holds them.

    The caller holds the locks of what also writes these stores (drain, retrain, backup, the feature store) and has
    checked that no run is storing results.
    """
    recordings, identities = find_recordings(named, db, features)
    results, labels = ResultStore(db, retry_s=settings.mongo_retry_s), LabelStore(db)
    # Found first, deleted last: the cache's keys need the models that scored them, and a forget cut short must still
    # find the rest from the predictions.
    listed = {"paths": recordings.paths, "subjects": recordings.subjects}
    found = results.forget(hashes=recordings.hashes, **listed, folders=recordings.folders, dry_run=True)
    registered = [doc["version"] for doc in ModelStore(db).list(limit=_MODELS_LISTED)]
    queued = queue.forget(hashes=recordings.hashes, **listed, folders=recordings.folders, dry_run=dry_run)
    paths = recordings.paths | found.paths | {path for _, path, _ in identities | queued if path}
    timed = latency.forget(paths, dry_run=dry_run)
    cached = cache.forget(recordings.hashes, {*found.model_versions, *registered}, dry_run=dry_run)
    erased = features.forget(hashes=recordings.hashes, **listed, dry_run=dry_run)
    labelled = labels.forget(recordings.hashes, dry_run=dry_run)
    stored = found if dry_run else results.forget(hashes=recordings.hashes, **listed, folders=recordings.folders)
    held = found.hashes | erased.hashes | labelled | {sha for sha, _, _ in queued if sha}
    trained_on, unknown = _models_trained_on(recordings.hashes, registered, settings.models_dir)
    return Erasure(
        recordings=len(held), queued=len(queued), latency_samples=timed, predictions=stored.predictions, quarantine=stored.quarantine,
        labels=len(labelled), cached=cached,
        feature_rows=erased.rows, feature_files_rewritten=erased.rewritten, feature_files_removed=erased.removed,
        unreadable_feature_files=tuple(map(str, erased.unreadable)), trained_on=trained_on, training_unknown=unknown,
        backups=tuple(_backups(settings)), unmatched=tuple(unmatched(named, identities | queued, held)), dry_run=dry_run,
        hashes=recordings.hashes, quarantine_ids=stored.unhashed_quarantine,
    )


def _models_trained_on(hashes: frozenset[str], registered: list[str], models_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The model versions (registered, and the shipped baseline) trained on some of ``hashes``, and those whose
    training list is missing or damaged, so that whether they were cannot be told."""
    trained_on, unknown = [], []
    folders = {version: models_dir / version for version in registered if (models_dir / version).is_dir()}
    shipped = read_bundle(SHIPPED_DIR).card.version
    folders.setdefault(shipped, SHIPPED_DIR)
    for version, folder in folders.items():
        try:
            listed = read_training_hashes(folder, read_bundle(folder).card)
        except ModelError:
            listed = None
        if listed is None:
            unknown.append(version)
        elif listed & hashes:
            trained_on.append(version)
    unknown += [version for version in registered if version not in folders]  # registered, its folder gone
    return tuple(trained_on), tuple(unknown)


def _backups(settings: Settings) -> list[str]:
    """The backups in ``VOXFLOW_BACKUP_DIR``: each holds the database as it was when taken."""
    fs, root = open_location(settings.backup_location)
    return list_backups(fs, root)
