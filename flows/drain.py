"""The drain-queue flow: analyse files from the intake queue until it is empty.

Each entry is acknowledged only once its outcome is persisted: a prediction, a quarantine record, or
an earlier prediction of the same content; a duplicate of another file of its batch once its own record
and that file's outcome are. A killed drain leaves its entries pending; the next drain
claims them after ``queue_claim_idle_s`` and skips what was already stored.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import defaultdict
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from logging import Logger, LoggerAdapter
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Sequence

from distributed import Client
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.analyze import Known, record_set_aside, report_input_drift, score_files, skip_known
from flows.run_log import send_to_run_log
from models.artifact import ModelBundle
from models.drift import InputTally, combined
from store.latency import LatencyLog, LatencySample, latency_summary
from store.locks import DRAIN_LOCK, HeldLock, hold_lock, wanted
from store.queue import QUEUE_STREAM, ConsumerState, FileQueue, QueueEntry, removable_consumers
from store.runs import close_abandoned_runs
from tasks.cluster import dask_client, initial_workers
from tasks.chunk import ChunkResult
from tasks.ingest import Candidate, Rejection, hash_candidates
from tasks.model_registry import FollowedChampion, load_champion
from tasks.persist import Stores, open_stores, recorded_run
from voxflow.errors import LockError
from voxflow.interrupts import record_completed
from voxflow.processes import ended_on_this_host
from voxflow.settings import Settings, get_settings

# Consumers idle this long with nothing pending belong to finished or dead drains.
_STALE_CONSUMER_S = 3600.0
_PAUSE_POLL_S = 0.5


@dataclass
class DrainTotals:
    """What a drain did so far: entries acknowledged by outcome, files decoded and analysed, and their latencies."""

    acked: int = 0
    scored: int = 0
    skipped: int = 0
    duplicates: int = 0
    quarantined: int = 0
    analysed: int = 0
    batches: int = 0
    latencies: list[float] = field(default_factory=list)
    inputs: InputTally | None = None  # the scored rows' features, of the last champion that scored some (input drift)


def _pathless_name(entry: QueueEntry) -> str:
    """What stands for the path of an entry without one, in its quarantine record and latency sample."""
    return f"queue entry {entry.entry_id}"


class BatchAcks:
    """One batch's entries by file path; acknowledges them as their outcome is persisted."""

    def __init__(self, entries: Sequence[QueueEntry], queue: FileQueue, latency: LatencyLog, totals: DrainTotals) -> None:
        self._by_path: dict[str, list[QueueEntry]] = defaultdict(list)
        for entry in entries:
            self._by_path[str(Path(entry.path)) if entry.path else _pathless_name(entry)].append(entry)
        self._queue = queue
        self._latency = latency
        self._totals = totals

    def candidates(self) -> list[Candidate]:
        """One candidate per entry with a path, with that entry's subject and label, a path's entries together: the
        same path enqueued twice is analysed once, its second entry a duplicate of the first."""
        return [Candidate(Path(path), entry.subject_id, entry.label) for path, entries in self._by_path.items() for entry in entries if entry.path]

    def pathless(self) -> list[Rejection]:
        """Entries without a path (another producer's): quarantined and acknowledged, or every drain would read them again."""
        return [
            Rejection(path, "discover", "queue entry has no 'path' field (or an empty one): it names no file", "KeyError")
            for path, entries in self._by_path.items()
            if not entries[0].path
        ]

    def settle(self, paths: Iterable[str], outcome: str) -> None:
        """Acknowledge every entry of ``paths`` and record its enqueue-to-persisted latency."""
        settled = [(path, entry) for path in paths for entry in self._by_path.pop(path, [])]
        now = time.time()
        samples = [LatencySample(e.entry_id, e.path or path, now - e.enqueued_at, outcome) for path, e in settled]
        acked = set(self._queue.ack([entry.entry_id for _, entry in settled], log=self._latency, samples=samples))
        recorded = [s for s in samples if s.entry_id in acked]
        self._totals.acked += len(recorded)
        self._totals.latencies.extend(s.latency_s for s in recorded)

    def settle_chunk(self, result: ChunkResult) -> None:
        """``on_persisted`` callback: a chunk's rows are scored, its rejections quarantined."""
        self.settle(result.table.column("path").to_pylist(), "scored")
        self.settle([rejection["path"] for rejection in result.rejected], "quarantined")

    def unsettled(self) -> list[str]:
        """Paths not settled yet (after scoring: content duplicates of another file in the batch)."""
        return list(self._by_path)


def _drain_batch(
    acks: BatchAcks,
    *,
    bundle: ModelBundle,
    stores: Stores,
    settings: Settings,
    run_id: str,
    chunk_size: int,
    client: Callable[[int], Client],
    totals: DrainTotals,
) -> None:
    found = hash_candidates(acks.candidates(), rejected=acks.pathless(), max_file_bytes=int(settings.max_file_mb * 1e6))
    known = skip_known(quote(found), bundle.card.version, stores) if found.files else Known([], [], [])  # quote(): see flows/analyze.py
    record_set_aside(found.rejected, known.scored_before, stores.results, run_id=run_id)
    acks.settle([r.path for r in found.rejected], "quarantined")
    acks.settle([ref.path for ref in known.skipped], "skipped")
    acks.settle([d.ref.path for d in known.scored_before], "duplicate")
    pending = known.pending
    if pending:
        outcome = score_files(quote(pending), bundle, stores, settings, run_id, chunk_size, on_persisted=acks.settle_chunk, client=client(len(pending)))
        totals.scored += outcome.inserted
        totals.skipped += outcome.scored - outcome.inserted
        totals.quarantined += outcome.quarantined
        totals.analysed += outcome.analysed
        totals.inputs = combined(totals.inputs, outcome.inputs)
    # What is left shares its content with a file of this batch, whose outcome is now persisted: its record is stored, then it is acknowledged.
    copies = record_set_aside([], known.in_batch, stores.results, run_id=run_id)
    acks.settle([d.ref.path for d in copies], "quarantined")
    acks.settle(acks.unsettled(), "duplicate")
    totals.skipped += len(known.skipped)
    totals.duplicates += len(known.duplicates) - len(copies)
    totals.quarantined += len(found.rejected) + len(copies)
    totals.batches += 1


def give_way(lock: HeldLock, stores: Stores, *, run_id: str | None, logger: Logger | LoggerAdapter[Logger], retake_wait_s: float) -> bool:
    """Pause while a forget wants the drain lock (:func:`store.locks.wanting`): let go of the lock, mark the run
    "paused" (``run_id``, when recorded), and take both back once no forget wants it.

    Called between batches only, when every entry read has been acknowledged: a paused drain holds nothing of
    the queue, so a forget can remove any entry. Returns False when another holder keeps the lock ``retake_wait_s``
    after that (another drain took it meanwhile; or a forget that died, whose lock outlives its request by up to
    the lock's TTL): this one then ends, leaving the queue to the next.
    """
    if not wanted(stores.redis, DRAIN_LOCK):
        return True
    logger.info("A forget is waiting: this drain pauses until it is done")
    if run_id is not None:
        stores.results.set_run_status(run_id, "paused")
    try:
        with lock.let_go(wait_s=retake_wait_s):
            while wanted(stores.redis, DRAIN_LOCK):
                time.sleep(_PAUSE_POLL_S)
    except LockError as exc:
        logger.info("Another drain took the queue over while this one paused (%s): this one ends here", exc.reason)
        return False
    finally:
        if run_id is not None:
            stores.results.set_run_status(run_id, "running")
    logger.info("The forget is done: the drain goes on")
    return True


def dead_local_consumers(consumers: Sequence[ConsumerState]) -> list[str]:
    """Consumers holding entries whose drain process, on this host, has ended (named ``host-pid-run``).

    A pid taken again by another process counts as alive: those entries wait for the claim idle time.
    """
    dead = []
    for consumer in consumers:
        host, _, pid = consumer.name.rpartition("-")[0].rpartition("-")
        if consumer.pending and ended_on_this_host(host, pid):
            dead.append(consumer.name)
    return dead


@flow(name="drain-queue")
def drain_queue(
    model_version: str | None = None,
    chunk_size: Annotated[int, Field(ge=1, le=4096)] | None = None,
    batch_size: Annotated[int, Field(ge=1, le=10_000)] | None = None,
    linger_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0,
) -> dict[str, Any]:
    """Analyse files from the ``voxflow:queue`` stream in batches until it is empty.

    One drain at a time (Redis lock ``voxflow:lock:drain``): another one, started while it runs (by the
    schedule, say), finishes at once as "skipped". The lock, unlike a deployment concurrency limit
    held by the Prefect server, expires with a dead holder and is taken over at once on its host.

    Parameters
    ----------
    model_version : str, optional
        A registered model version; default is the champion (or the shipped baseline).
    chunk_size : int, optional
        Files per Dask task; default from settings.
    batch_size : int, optional
        Queue entries read per batch; default ``queue_batch_size``.
    linger_s : float
        Once the queue is empty, wait this long for new entries before finishing (the cluster stays up).

    Returns
    -------
    dict
        The run summary (entries acknowledged, scored, skipped, duplicates, quarantined, latency
        percentiles), also stored in the ``runs`` collection unless the queue held nothing to read.
    """
    started = time.perf_counter()
    settings = get_settings()
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    run_id = flow_run.get_id() or uuid.uuid4().hex
    with open_stores(settings) as stores, ExitStack() as held:
        try:
            lock = held.enter_context(hold_lock(stores.redis, DRAIN_LOCK, ttl_s=settings.lock_ttl_s))
        except LockError as exc:
            reason = f"{exc.reason}; a forget is running or waiting for it" if wanted(stores.redis, DRAIN_LOCK) else exc.reason
            logger.info("Nothing to do here: %s", reason)
            return {"run_id": run_id, "source": QUEUE_STREAM, "status": "skipped", "reason": reason, "acked": 0}
        pinned = model_version or settings.model_version
        # Unless a version is pinned, each batch is scored by the champion of the moment: a promotion or rollback reaches a lingering drain.
        followed = None if pinned else FollowedChampion(stores.models, settings.models_dir)
        bundle = followed.bundle if followed else load_champion(stores.models, settings.models_dir, pinned)
        queue = FileQueue(stores.redis)
        latency = LatencyLog(stores.redis, maxlen=settings.metrics_maxlen)
        consumer = f"{socket.gethostname()}-{os.getpid()}-{run_id[:8]}"
        dead = dead_local_consumers(queue.status().consumers)
        if released := queue.release(dead, idle_s=settings.queue_claim_idle_s):
            logger.info("%d entries of %d ended drains on this host are claimed now, not after %.0f s idle", released, len(dead), settings.queue_claim_idle_s)
        totals = DrainTotals()
        count = batch_size or settings.queue_batch_size

        def read() -> list[QueueEntry]:
            # A forget waiting for the queue is let go first, between batches; a linger ends early for it, and starts again after.
            while give_way(lock, stores, run_id=run_id if totals.batches else None, logger=logger, retake_wait_s=settings.lock_ttl_s):
                entries = queue.read(
                    consumer, count=count, claim_idle_s=settings.queue_claim_idle_s, block_s=linger_s, stop_waiting=lambda: wanted(stores.redis, DRAIN_LOCK)
                )
                if entries or not wanted(stores.redis, DRAIN_LOCK):
                    return entries
            return []

        if not (entries := read()):
            close_abandoned_runs(stores.results)  # recorded_run's first step, which an empty drain does not reach
            logger.info("The queue is empty: nothing to drain, no run recorded")
        # A drain is recorded from its first batch on: the schedule's empty drains, one a minute, would bury every other run.
        with recorded_run(stores.results, bundle.card, settings, run_id=run_id, source=QUEUE_STREAM) if entries else nullcontext():
            with ExitStack() as stack:
                clients: list[Client] = []

                def client(files: int) -> Client:
                    # One cluster for the whole drain, started only when a batch has something to score,
                    # with a worker per chunk of that batch's files (rounded up); adaptive scaling follows the queue from there.
                    if not clients:
                        clients.append(stack.enter_context(dask_client(settings, workers=initial_workers(files, settings, chunk_size or settings.chunk_size))))
                    return clients[0]

                while entries:
                    if followed is not None:
                        bundle, changed = followed.current()
                        if changed:
                            logger.info("The champion is now %s: this batch and the next are scored by it", bundle.card.version)
                    _drain_batch(
                        BatchAcks(entries, queue, latency, totals), bundle=bundle, stores=stores, settings=settings,
                        run_id=run_id, chunk_size=chunk_size or settings.chunk_size, client=client, totals=totals,
                    )
                    logger.info("Batch %d: %d entries settled, %d acknowledged so far", totals.batches, len(entries), totals.acked)
                    entries = read()
        status = queue.status()
        queue.remove_consumers(removable_consumers(status.consumers, idle_s=max(_STALE_CONSUMER_S, settings.queue_claim_idle_s), ended={consumer, *dead}))
        wall = time.perf_counter() - started
        lat = latency_summary(totals.latencies)
        summary = {
            "run_id": run_id,
            "source": QUEUE_STREAM,
            "status": "completed",
            "acked": totals.acked,
            "scored": totals.scored,
            "skipped": totals.skipped,
            "duplicates": totals.duplicates,
            "quarantined": totals.quarantined,
            "batches": totals.batches,
            "wall_s": round(wall, 3),
            "clips_per_s": round(totals.analysed / wall, 3) if wall > 0 else 0.0,
            "latency_p50_s": lat["p50_s"],
            "latency_p95_s": lat["p95_s"],
            "depth": status.depth,
            "model_version": bundle.card.version,
            "feature_version": bundle.card.feature_version,
            "input_drift": report_input_drift(totals.inputs, bundle.card, settings, run_id=run_id) if totals.batches else None,
        }

        def finish() -> None:
            if totals.batches:  # a drain that found nothing to read records no run
                stores.results.finish_run(run_id, {**summary, "finished_at": datetime.now(timezone.utc)})

        record_completed(finish, run_id)  # a stop from here on leaves nothing to re-run, and the command says so
        logger.info(
            "Drain %s completed: %d entries acknowledged (%d scored, %d skipped, %d duplicates, %d quarantined) in %.1f s",
            run_id, totals.acked, totals.scored, totals.skipped, totals.duplicates, totals.quarantined, wall,
        )
        return summary
