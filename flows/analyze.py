"""The analyze spine: a SOURCE of audio in, stored and explained predictions out."""

from __future__ import annotations

import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Sequence
from uuid import UUID

from distributed import Client
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.drift import announce_shift
from flows.run_log import send_to_run_log
from models.artifact import ModelBundle, ModelCard
from models.drift import InputTally, as_shown, compare
from store.mongo import ResultStore
from tasks.cluster import cluster_bounds, dask_client, first_worker_joined, initial_workers, with_handed_cluster
from tasks.chunk import AudioPolicy, ChunkResult
from tasks.fanout import FanoutOutcome, fan_out, in_flight_limit
from tasks.ingest import AUDIO_SUFFIXES, Discovery, Duplicate, FileRef, Rejection, discover, ignored_summary, recorded_source, scored_before, unreadable_audio
from tasks.model_registry import load_champion
from tasks.persist import Stores, duplicate_doc, open_stores, quarantine_docs, recorded_run
from tasks.progress import LatestOnly, Progress
from tasks.scaling import ScalingMonitor
from voxflow.interrupts import record_completed
from voxflow.scaling import Thresholds
from voxflow.settings import Settings, get_settings


@task(name="discover-files", cache_policy=NO_CACHE)
def discover_files(source: str, settings: Settings) -> Discovery:
    """List and hash the source (what it sets aside is recorded by :func:`record_set_aside`); log what it found and,
    once, the files it ignored (a WARNING for audio in formats voxflow cannot read)."""
    found = discover(source, max_file_bytes=int(settings.max_file_mb * 1e6))
    logger = get_run_logger()
    logger.info(
        "Found %d audio files in %s: %d to analyse, %d rejected, %d of content listed already; %d other files ignored",
        found.seen, source, len(found.files), len(found.rejected), len(found.duplicates), len(found.ignored),
    )
    if found.ignored:
        logger.info(ignored_summary(found.ignored))
    if unreadable := unreadable_audio(found.ignored):
        logger.warning(unreadable)
    for unread in found.unread_labels:
        logger.warning(unread)
    if not found.seen:
        logger.warning("No audio files in %s: nothing to analyse (voxflow reads %s; WFDB records by their .hea)", source, " ".join(sorted(AUDIO_SUFFIXES)))
    return found


def record_set_aside(rejected: Sequence[Rejection], duplicates: Sequence[Duplicate], results: ResultStore, *, run_id: str) -> list[Duplicate]:
    """Quarantine what a batch set aside: each rejected file (stage ``discover``), and each duplicate (stage
    ``duplicate``) naming the file analysed in its place, or scored before.

    A duplicate of a file this run quarantined is quarantined as that file was (:func:`tasks.persist.duplicate_doc`):
    record the duplicates of a batch's files (:attr:`Known.in_batch`) once the batch is scored. Any other duplicate
    listed with another subject_id or label than its file is logged as a warning too: only that file's are stored
    with the prediction.

    Returns
    -------
    list of Duplicate
        The duplicates quarantined as their file was.
    """
    logger = get_run_logger()
    bad = results.quarantined_in_run(run_id, {d.first.sha256 for d in duplicates if d.scored_in is None})
    of_bad = [bad.get((d.first.path, d.first.sha256)) if d.scored_in is None else None for d in duplicates]
    for duplicate, quarantined in zip(duplicates, of_bad):
        if duplicate.differences and quarantined is None:
            logger.warning("%s: %s", duplicate.ref.path, duplicate.reason)
    records = [*rejected, *map(duplicate_doc, duplicates, of_bad)]
    if records:
        results.insert_quarantine(quarantine_docs(records, run_id=run_id, created_at=datetime.now(timezone.utc)))
    return [duplicate for duplicate, quarantined in zip(duplicates, of_bad) if quarantined is not None]


@dataclass(frozen=True)
class Known:
    """A batch split by what this model has scored: the files to score; the listings of content already scored
    that list it as its prediction was scored (skipped); and the duplicates to record, of a file in the batch
    or of a prediction scored before under another listing."""

    pending: list[FileRef]
    skipped: list[FileRef]
    duplicates: list[Duplicate]

    @property
    def scored_before(self) -> list[Duplicate]:
        """The duplicates of predictions stored before this batch."""
        return [d for d in self.duplicates if d.scored_in is not None]

    @property
    def in_batch(self) -> list[Duplicate]:
        """The duplicates of files this batch scores (or quarantines)."""
        return [d for d in self.duplicates if d.scored_in is None]


@task(name="skip-known", cache_policy=NO_CACHE)
def skip_known(found: Discovery, model_version: str, stores: Stores) -> Known:
    """Drop the content this model already scored (the Redis cache first, then MongoDB).

    Every listing of such content in the batch, the one discovery kept and its repeats alike, is weighed
    against the stored prediction's listing: the same again is skipped, another name, subject_id or label
    a duplicate of that prediction. Repeats of content not scored yet stay duplicates of the file the batch
    analyses.
    """
    hashes = [ref.sha256 for ref in found.files]
    # A prediction cached before listings were cached has no path: looked up in MongoDB as if not cached.
    cached = {sha: doc for sha, doc in stores.cache.get_many(hashes, model_version).items() if "path" in doc}
    stored = cached | stores.results.stored_listings([h for h in hashes if h not in cached], model_version)
    pending = [ref for ref in found.files if ref.sha256 not in stored]
    skipped: list[FileRef] = []
    in_batch = [duplicate for duplicate in found.duplicates if duplicate.ref.sha256 not in stored]
    earlier: list[Duplicate] = []
    for ref in [*found.files, *(duplicate.ref for duplicate in found.duplicates)]:
        if ref.sha256 not in stored:
            continue
        repeat = scored_before(ref, stored[ref.sha256])
        if repeat is None:
            skipped.append(ref)
        else:
            earlier.append(repeat)
    get_run_logger().info(known_line(len(pending), len(found.files) - len(pending), model_version, len(cached), len(skipped), len(earlier)))
    return Known(pending, skipped, [*in_batch, *earlier])


def known_line(pending: int, known: int, model_version: str, cached: int, skipped: int, duplicates: int) -> str:
    """What :func:`skip_known` found, in one log line.

    Examples
    --------
    >>> known_line(13, 0, "m1", 0, 0, 0)
    '13 files to score; none scored before by m1'
    >>> known_line(1, 5, "m1", 2, 4, 1)
    '1 file to score; 5 already scored by m1 (2 found in the Redis cache): 4 skipped, listed as then; 1 recorded as a duplicate, listed under another name, subject_id or label then'
    """
    line = f"{pending} file{'s' if pending != 1 else ''} to score; "
    if not known:
        return line + f"none scored before by {model_version}"
    parts = [f"{skipped} skipped, listed as then"] if skipped else []
    if duplicates:
        parts.append(f"{duplicates} recorded as {'a duplicate' if duplicates == 1 else 'duplicates'}, listed under another name, subject_id or label then")
    return line + f"{known} already scored by {model_version} ({cached} found in the Redis cache): " + "; ".join(parts)


class ProgressArtifact:
    """A run's Prefect progress artifact (key ``analyze-progress``), created by its first update."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._id: UUID | None = None

    def __call__(self, percent: float) -> None:
        """Show ``percent`` done."""
        if self._id is None:
            self._id = create_progress_artifact(progress=percent, key="analyze-progress", description=self._description)
        else:
            update_progress_artifact(self._id, percent)


@task(name="score-files", cache_policy=NO_CACHE)
def score_files(
    files: list[FileRef],
    bundle: ModelBundle,
    stores: Stores,
    settings: Settings,
    run_id: str,
    chunk_size: int,
    on_persisted: Callable[[ChunkResult], None] | None = None,
    client: Client | None = None,
) -> FanoutOutcome:
    """Fan the files out to Dask in chunks; persist each chunk as it completes.

    ``on_persisted`` is called with each chunk's result after it is stored (the queue acks there).
    ``client`` reuses a caller's cluster across calls (the queue drain); by default one is started for this call.
    """
    logger = get_run_logger()
    if not files:
        return FanoutOutcome()
    # Off this thread: with the Prefect API down, each update was retried for a minute and then failed the batch.
    artifact_progress = LatestOnly(ProgressArtifact(f"run {run_id}"), what="the Prefect progress artifact")
    artifact_progress.post(0.0)

    def report(progress: Progress, result: ChunkResult, inserted: int) -> None:
        if on_persisted is not None:
            on_persisted(result)
        stores.metrics.record(
            "throughput",
            {"run_id": run_id, "files_done": progress.done, "files_total": progress.total, "clips_per_s": round(progress.rate, 3), "chunk_wall_s": round(result.wall_s, 3), "worker": result.worker},
        )
        if progress.due():
            logger.info(progress.line())
            artifact_progress.post(progress.percent)

    # A worker per chunk of files to start with (rounded up, within the adaptive bounds): no waiting for adaptive scaling to add them.
    cluster = nullcontext(client) if client is not None else dask_client(settings, workers=initial_workers(len(files), settings, chunk_size))
    with artifact_progress, cluster as client:
        first_worker_joined(client, timeout_s=settings.dask_worker_start_timeout_s)
        bounds = cluster_bounds(settings)
        monitor = ScalingMonitor(
            client, results=stores.results, metrics=stores.metrics, thresholds=Thresholds.from_settings(settings), run_id=run_id, bounds=bounds,
        )
        sized_for = (f"the {monitor.slots} worker threads it has now (followed as workers join or leave)" if bounds.existing
                     else f"{monitor.slots} workers (VOXFLOW_DASK_MAX_WORKERS)")
        logger.info(
            "Scoring %d files on the Dask cluster at %s in chunks of at most %d, up to %d in flight: sized for %s",
            len(files), client.scheduler.address, chunk_size, in_flight_limit(monitor.slots), sized_for,
        )
        return fan_out(
            client, files, max_chunk=chunk_size, policy=AudioPolicy.from_settings(settings), bundle=bundle, stores=stores, run_id=run_id,
            monitor=monitor, on_progress=report,
        )


def report_input_drift(tally: InputTally | None, card: ModelCard, settings: Settings, *, run_id: str) -> dict[str, Any] | None:
    """Compare what a run scored (``tally``, of the model that scored it) with that model's training data
    (:mod:`models.drift`), log it (:func:`flows.drift.announce_shift`: a WARNING and a Prefect event when some feature
    shifted) and return the report as the run document stores it; None when nothing was scored, or the model's
    ``card`` has no profile (saved before cards had one: said once per run)."""
    if tally is None:
        if not card.input_profile:
            get_run_logger().info("Input drift not checked: model %s's card has no profile of its training data (saved before voxflow recorded one); retrain it to get one", card.version)
        return None
    if not tally.n:
        return None
    report = compare(tally, psi_limit=settings.drift_psi, alpha=settings.drift_alpha)
    announce_shift(report, run_id=run_id)
    return report.as_doc()


def _summary_markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {key} | {as_shown(value)} |" for key, value in summary.items())
    return f"# voxflow analyze run\n\n| field | value |\n|---|---|\n{rows}\n"


@flow(name="analyze-batch")
def analyze_batch(
    source: str, model_version: str | None = None, chunk_size: Annotated[int, Field(ge=1, le=4096)] | None = None
) -> dict[str, Any]:
    """Analyse every audio file of SOURCE and store scored, explained predictions.

    Parameters
    ----------
    source : str
        A folder (recursive), a glob, a CSV/Parquet manifest (``path`` column) or one file.
    model_version : str, optional
        A registered model version; default is the champion (or the shipped baseline).
    chunk_size : int, optional
        Files per Dask task; default from settings.

    Returns
    -------
    dict
        The run summary also stored in the ``runs`` collection.
    """
    started = time.perf_counter()
    settings = with_handed_cluster(get_settings())  # the CLI's cluster started ahead, if any
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    run_id = flow_run.get_id() or uuid.uuid4().hex
    with open_stores(settings) as stores:
        bundle = load_champion(stores.models, settings.models_dir, model_version or settings.model_version)
        card = bundle.card
        shown = recorded_source(source)
        with recorded_run(stores.results, card, settings, run_id=run_id, source=shown) as so_far:
            found = discover_files(source, settings)
            discovered = time.perf_counter()
            # quote(): Prefect would otherwise walk every FileRef of the batch looking for futures (~0.1 ms each).
            known = skip_known(quote(found), card.version, stores)
            so_far.update(seen=found.seen, skipped=len(known.skipped), ignored=len(found.ignored))
            record_set_aside(found.rejected, known.scored_before, stores.results, run_id=run_id)
            checked = time.perf_counter()
            outcome = score_files(quote(known.pending), bundle, stores, settings, run_id, chunk_size or settings.chunk_size)
            copies = record_set_aside([], known.in_batch, stores.results, run_id=run_id)
            input_drift = report_input_drift(outcome.inputs, card, settings, run_id=run_id)
            finished = time.perf_counter()
            wall = finished - started
            summary = {
                "run_id": run_id,
                "source": shown,
                "status": "completed",
                "seen": found.seen,
                "scored": outcome.inserted,
                "skipped": len(known.skipped) + (outcome.scored - outcome.inserted),
                "duplicates": len(known.duplicates) - len(copies),
                "quarantined": outcome.quarantined + len(found.rejected) + len(copies),
                "ignored": len(found.ignored),
                "wall_s": round(wall, 3),
                "clips_per_s": round(outcome.analysed / wall, 3) if wall > 0 else 0.0,
                # Where the wall time went: set-up and listing + hashing, skip-known, fan-out + persist.
                "discover_s": round(discovered - started, 3),
                "skip_known_s": round(checked - discovered, 3),
                "score_s": round(finished - checked, 3),
                "model_version": card.version,
                "feature_version": card.feature_version,
                "workers_max_seen": outcome.max_workers_seen,
                "chunks": outcome.chunks,
                "input_drift": input_drift,
            }
            # Recorded whole: a Ctrl-C from here on leaves the run "completed", and the command says so.
            record_completed(lambda: stores.results.finish_run(run_id, {**summary, "finished_at": datetime.now(timezone.utc)}), run_id)
        create_markdown_artifact(markdown=_summary_markdown(summary), key="analyze-summary", description=f"voxflow run {run_id}")
        logger.info(
            "Run %s completed: %d scored, %d skipped, %d duplicates, %d quarantined in %.1f s",
            run_id, summary["scored"], summary["skipped"], summary["duplicates"], summary["quarantined"], wall,
        )
        return summary
