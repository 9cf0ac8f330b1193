"""Fan chunks of files out to Dask workers and persist each chunk as it completes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from distributed import Client, Future, as_completed

from models.artifact import ModelBundle
from tasks.extract import AudioPolicy, ChunkResult, rows_to_table, score_chunk
from tasks.ingest import FileRef, chunked
from tasks.persist import Stores, persist_scored
from tasks.progress import Progress
from tasks.scaling import ScalingMonitor


@dataclass
class FanoutOutcome:
    """What the fan-out did: new predictions, rows scored (new or already stored), quarantined files."""

    inserted: int = 0
    scored: int = 0
    quarantined: int = 0
    chunks: int = 0
    max_workers_seen: int = 0


def balanced_chunk_size(n_files: int, *, max_chunk: int, workers: int) -> int:
    """Chunk size for a batch: at most ``max_chunk``, small enough that every worker gets two chunks.

    Large batches use ``max_chunk`` (tasks of seconds, which adaptive scaling can measure);
    a small batch is split so it still spreads over the cluster.
    """
    return max(1, min(max_chunk, -(-n_files // (2 * workers))))


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
    files: Sequence[FileRef],
    *,
    policy: AudioPolicy,
    bundle: ModelBundle,
    stores: Stores,
    run_id: str,
    chunk_size: int,
    window: int,
    monitor: ScalingMonitor,
    on_progress: Callable[[Progress, ChunkResult, int], None],
) -> FanoutOutcome:
    """Score ``files`` on the cluster, at most ``window`` chunks in flight, persisting as they finish.

    A chunk whose task fails (a worker killed repeatedly, a crash in native code) is split and
    its files retried one by one, so a single poisonous file is quarantined and the rest scored.
    """
    outcome = FanoutOutcome()
    progress = Progress(total=len(files))
    model = client.scatter(bundle, broadcast=True)
    waiting = deque(chunked(files, chunk_size))
    next_id = 0
    in_flight: dict[Future, list[FileRef]] = {}
    tracker = as_completed()

    def submit(chunk: list[FileRef]) -> None:
        nonlocal next_id
        future = client.submit(score_chunk, next_id, chunk, policy, model, pure=False, key=f"score-chunk-{run_id}-{next_id}")
        next_id += 1
        in_flight[future] = chunk
        tracker.add(future)

    while waiting and len(in_flight) < window:
        submit(waiting.popleft())
    monitor.observe(backlog=len(files))
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
    monitor.add_files([(d + f) / 1e3 for d, f in zip(timings["decode_ms"], timings["features_ms"])], errors=len(result.rejected))
    on_progress(progress, result, inserted)
