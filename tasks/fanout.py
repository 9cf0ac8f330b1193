"""Fan chunks of files out to Dask workers and persist each chunk as it completes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from distributed import Client, Future, as_completed

from models.artifact import ModelBundle
from tasks.chunk import AudioPolicy, ChunkResult, rows_to_table, score_on_worker
from tasks.ingest import FileRef
from tasks.persist import Stores, persist_scored
from tasks.progress import Progress
from tasks.scaling import ScalingMonitor
from voxflow.interrupts import stops_deferred


@dataclass
class FanoutOutcome:
    """What the fan-out did: new predictions, rows scored (new or already stored), quarantined files."""

    inserted: int = 0
    scored: int = 0
    quarantined: int = 0
    chunks: int = 0
    max_workers_seen: int = 0

    @property
    def analysed(self) -> int:
        """Files decoded and analysed: scored, or quarantined by the workers (what a run's clips_per_s counts)."""
        return self.scored + self.quarantined


MIN_CHUNK = 4  # files (~0.1 s of work): below this a chunk's persist and bookkeeping cost more than the tail it evens out


def plan_chunks(files: Sequence[FileRef], *, max_chunk: int, workers: int) -> list[list[FileRef]]:
    """Split a batch into Dask tasks by guided self-scheduling.

    While work is plentiful every chunk holds ``max_chunk`` files (tasks of seconds, which adaptive
    scaling can measure). Once the files left would no longer give every worker two such chunks,
    each chunk takes ``1 / (2 * workers)`` of what is left, down to ``MIN_CHUNK`` files, so the
    workers run out of work together instead of one finishing a full chunk alone; a small batch
    is spread over every worker the same way.

    Returns
    -------
    list of list of FileRef
        Consecutive chunks covering ``files`` in order.

    Raises
    ------
    ValueError
        When ``max_chunk`` is below 1.
    """
    if max_chunk < 1:
        raise ValueError(f"max_chunk must be at least 1, got {max_chunk}")
    floor = min(MIN_CHUNK, max_chunk)
    chunks, start = [], 0
    while start < len(files):
        size = max(floor, min(max_chunk, -(-(len(files) - start) // (2 * workers))))
        chunks.append(list(files[start : start + size]))
        start += size
    return chunks


def _lost_chunk(files: Sequence[FileRef], exc: BaseException) -> list[dict]:
    """Quarantine records for a file whose worker kept dying or whose task failed outright."""
    return [
        {
            "path": ref.path,
            "audio_sha256": ref.sha256,
            "stage": "worker",
            "reason": f"worker failed while processing this file ({type(exc).__name__}: {exc})",
            "error_class": type(exc).__name__,
        }
        for ref in files
    ]


def fan_out(
    client: Client,
    chunks: Sequence[list[FileRef]],
    *,
    policy: AudioPolicy,
    bundle: ModelBundle,
    stores: Stores,
    run_id: str,
    window: int,
    monitor: ScalingMonitor,
    on_progress: Callable[[Progress, ChunkResult, int], None],
) -> FanoutOutcome:
    """Score ``chunks`` of files on the cluster, at most ``window`` in flight, persisting as they finish.

    A chunk whose task fails (a worker killed repeatedly, a crash in native code) is split and
    its files retried one by one, so a single poisonous file is quarantined and the rest scored.
    Chunk ids come from the feature store, so they stay unique across every fan-out of a run (the
    batches of a queue drain): no chunk's feature file replaces another's. A cancelled chunk (the
    cluster lost every copy of the model) is not split, since that says nothing about its files: it
    fails the run, and a re-run or the next drain scores them.
    """
    outcome = FanoutOutcome()
    progress = Progress(total=sum(map(len, chunks)))
    # Unhashed: a content key would equal the one the previous fan-out of this process just released,
    # and the scheduler, forgetting it, cancels the chunks that depend on it ("lost dependencies").
    # A Ctrl-C takes effect once the workers have it (~0.1 s): interrupted, the scatter went on while the
    # command closed the client and the cluster, and the scheduler logged losing the model ("Removing worker
    # ... caused the cluster to lose scattered data", ERROR) or failing to copy it to a closing worker
    # ("Exception while handling op scatter", two tracebacks). A second Ctrl-C interrupts it at once (a
    # scatter waits up to 20 s for a first worker).
    with stops_deferred():
        model = client.scatter(bundle, broadcast=True, hash=False)
    waiting = deque(chunks)
    in_flight: dict[Future, list[FileRef]] = {}
    tracker = as_completed()

    def submit(chunk: list[FileRef]) -> None:
        chunk_id = stores.features.new_chunk_id(run_id)
        future = client.submit(score_on_worker, chunk_id, chunk, policy, model, pure=False, key=f"score-chunk-{run_id}-{chunk_id}")
        in_flight[future] = chunk
        tracker.add(future)

    while waiting and len(in_flight) < window:
        submit(waiting.popleft())
    monitor.observe(backlog=progress.total)
    for future in tracker:
        chunk = in_flight.pop(future)
        if future.status == "error":
            exc = future.exception()
            if len(chunk) > 1:
                waiting.extendleft([ref] for ref in reversed(chunk))
            else:
                result = ChunkResult(chunk_id=-1, table=rows_to_table([]), rejected=_lost_chunk(chunk, exc))
                _record(outcome, stores, result, run_id, bundle, progress, monitor, on_progress)
        else:
            _record(outcome, stores, future.result(), run_id, bundle, progress, monitor, on_progress)
        future.release()
        monitor.observe(backlog=progress.total - progress.done)
        outcome.max_workers_seen = monitor.max_workers_seen
        while waiting and len(in_flight) < window:
            submit(waiting.popleft())
    return outcome


def _record(
    outcome: FanoutOutcome,
    stores: Stores,
    result: ChunkResult,
    run_id: str,
    bundle: ModelBundle,
    progress: Progress,
    monitor: ScalingMonitor,
    on_progress: Callable[[Progress, ChunkResult, int], None],
) -> None:
    inserted = persist_scored(stores, result.table, result.rejected, run_id=run_id, chunk_id=result.chunk_id, card=bundle.card)
    outcome.inserted += inserted
    outcome.scored += result.table.num_rows
    outcome.quarantined += len(result.rejected)
    outcome.chunks += 1
    progress.advance(result.table.num_rows + len(result.rejected))
    timings = result.table.select(["decode_ms", "features_ms"]).to_pydict()
    monitor.add_files([(d + f) / 1e3 for d, f in zip(timings["decode_ms"], timings["features_ms"])], [r["stage"] for r in result.rejected])
    on_progress(progress, result, inserted)
