"""Fan chunks of files out to Dask workers and persist each chunk as it completes."""

from __future__ import annotations

import logging
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeGuard

from distributed import Client, Future, as_completed
from distributed.client import FutureCancelledError
from distributed.comm import CommClosedError
from distributed.scheduler import KilledWorker

from models.artifact import ModelBundle
from models.drift import InputTally
from tasks.chunk import AudioPolicy, ChunkResult, rows_to_table, score_on_worker
from tasks.cluster import cannot_run
from tasks.ingest import FileRef
from tasks.persist import Stores, persist_scored
from tasks.progress import Progress
from tasks.scaling import ScalingMonitor
from voxflow.errors import ClusterError
from voxflow.interrupts import stops_deferred

log = logging.getLogger(__name__)


@dataclass
class FanoutOutcome:
    """What the fan-out did: new predictions, rows scored (new or already stored), quarantined files, and the scored rows'
    features counted into the model's profile bins (None for a model whose card has no profile)."""

    inserted: int = 0
    scored: int = 0
    quarantined: int = 0
    chunks: int = 0
    max_workers_seen: int = 0
    inputs: InputTally | None = field(default=None, repr=False)

    @property
    def analysed(self) -> int:
        """Files decoded and analysed: scored, or quarantined by the workers (what a run's clips_per_s counts)."""
        return self.scored + self.quarantined


MIN_CHUNK = 4  # files (~0.1 s of work): below this a chunk's persist and bookkeeping cost more than the tail it evens out


class ChunkPlan:
    """A batch's files not sent yet, cut into Dask tasks by guided self-scheduling as they are sent.

    While work is plentiful every chunk holds ``max_chunk`` files (tasks of seconds, which adaptive
    scaling can measure). Once the files left would no longer give each of the cluster's task slots
    two such chunks, each chunk takes ``1 / (2 * slots)`` of what is left, down to ``MIN_CHUNK`` files,
    so the workers run out of work together instead of one finishing a full chunk alone; a small batch
    is spread over every slot the same way. ``slots`` is given as each chunk is cut: an existing
    cluster's workers may come and go meanwhile.

    Raises
    ------
    ValueError
        When ``max_chunk`` is below 1.
    """

    def __init__(self, files: Sequence[FileRef], *, max_chunk: int) -> None:
        if max_chunk < 1:
            raise ValueError(f"max_chunk must be at least 1, got {max_chunk}")
        self._files = files
        self._max_chunk = max_chunk
        self._cut = 0

    def __len__(self) -> int:
        """Files not cut into a chunk yet."""
        return len(self._files) - self._cut

    def cut(self, slots: int) -> list[FileRef]:
        """The next chunk, the files that follow the last one, for a cluster running ``slots`` tasks at once."""
        size = max(min(MIN_CHUNK, self._max_chunk), min(self._max_chunk, -(-len(self) // (2 * slots))))
        chunk = list(self._files[self._cut : self._cut + size])
        self._cut += len(chunk)
        return chunk


def in_flight_limit(slots: int) -> int:
    """Chunks kept in flight for a cluster running ``slots`` tasks at once: three each, at least 4.

    Examples
    --------
    >>> [in_flight_limit(slots) for slots in (1, 2, 16)]
    [4, 6, 48]
    """
    return max(4, 3 * slots)


def split_or_reject(chunk: list[FileRef], exc: KilledWorker) -> tuple[list[list[FileRef]], list[dict]]:
    """A chunk whose workers kept dying on it: its files as chunks of their own to send again, or, for a lone file,
    its quarantine record (stage ``worker``). Either is one warning.

    Returns
    -------
    tuple
        (chunks to send again, records of files rejected); one of the two is empty.
    """
    workers = exc.allowed_failures + 1
    if len(chunk) > 1:
        log.warning(
            "A chunk of %d files killed the %d Dask workers that ran it (the last at %s): scoring its files one by one to find the one that does",
            len(chunk), workers, exc.last_worker.address,
        )
        return [[ref] for ref in chunk], []
    log.warning("%s killed the %d Dask workers that ran it: quarantined (stage worker), the batch goes on", chunk[0].path, workers)
    reason = f"worker failed while processing this file ({type(exc).__name__}: {exc})"
    return [], [{**ref.listing(), "stage": "worker", "reason": reason, "error_class": type(exc).__name__} for ref in chunk]


MODEL_LOSSES = 3  # the cluster losing the model (every worker gone at once) more often than this in one fan-out ends the run


def is_file_specific(exc: BaseException) -> TypeGuard[KilledWorker]:
    """Whether a chunk's task error can be one of its files' doing: a worker died running it, again and again
    (distributed's KilledWorker, once the scheduler has retried the task on other workers).

    A file's decode, feature or time-limit error is a rejection in the chunk's result, never a task error
    (:func:`tasks.extract.extract_chunk`): any other task error is the cluster's, whatever the files.
    """
    return isinstance(exc, KilledWorker)


def fan_out(
    client: Client,
    files: Sequence[FileRef],
    *,
    max_chunk: int,
    policy: AudioPolicy,
    bundle: ModelBundle,
    stores: Stores,
    run_id: str,
    monitor: ScalingMonitor,
    on_progress: Callable[[Progress, ChunkResult, int], None],
) -> FanoutOutcome:
    """Score ``files`` on the cluster in chunks of at most ``max_chunk`` (:class:`ChunkPlan`), persisting them as they finish.

    The chunks and how many are in flight (:func:`in_flight_limit`) are sized for the tasks the cluster runs at
    once as ``monitor`` last sampled them (:attr:`~tasks.scaling.ScalingMonitor.slots`), sampling it after each
    chunk. A chunk whose worker kept dying on it (a crash in native code, memory) is split and its files
    retried one by one, so a single poisonous file is quarantined and the rest scored. Chunk ids come
    from the feature store, so they stay unique across every fan-out of a run (the batches of a queue
    drain): no chunk's feature file replaces another's. Chunks cancelled because the cluster lost
    every copy of the model (every worker gone at once) are sent again with a new copy, for up to
    :data:`MODEL_LOSSES` losses.

    Raises
    ------
    ClusterError
        When a task fails for any other reason (voxflow missing or different on the scheduler or a
        worker), the scheduler is lost, or it has no workers: no file is quarantined for it, and a
        re-run or the next drain scores what was not stored.
    """
    outcome = FanoutOutcome(inputs=InputTally.of(bundle.card))
    progress = Progress(total=len(files))
    plan = ChunkPlan(files, max_chunk=max_chunk)
    with _scheduler_kept(client):
        model = _scatter_model(client, bundle)
        losses = 0
        slots = monitor.slots
        waiting: deque[list[FileRef]] = deque()  # chunks to send again (a lost model's, a split chunk's files), before the plan's next
        in_flight: dict[Future, tuple[list[FileRef], Future]] = {}
        tracker = as_completed()

        def submit(chunk: list[FileRef]) -> None:
            chunk_id = stores.features.new_chunk_id(run_id)
            future = client.submit(score_on_worker, chunk_id, chunk, policy, model, pure=False, key=f"score-chunk-{run_id}-{chunk_id}")
            in_flight[future] = (chunk, model)
            tracker.add(future)

        def fill() -> None:
            while (waiting or plan) and len(in_flight) < in_flight_limit(monitor.slots):
                submit(waiting.popleft() if waiting else plan.cut(monitor.slots))

        def sample_then_fill() -> None:
            nonlocal slots
            monitor.observe(backlog=progress.total - progress.done)
            outcome.max_workers_seen = monitor.max_workers_seen
            if monitor.slots != slots:
                slots = monitor.slots
                log.info("The Dask cluster at %s runs %d tasks at once now: up to %d chunks in flight", client.scheduler.address, slots, in_flight_limit(slots))
            fill()

        fill()
        sample_then_fill()
        for future in tracker:
            chunk, used = in_flight.pop(future)
            if future.status == "cancelled":
                reason = _cancelled_for(future, client)
                if used.key == model.key:  # the first chunk this loss cancelled: the others go with the copy sent now
                    losses += 1
                    if losses > MODEL_LOSSES:
                        raise ClusterError(f"the Dask cluster at {client.scheduler.address} lost voxflow's model {losses} times ({reason}): re-run to finish the rest")
                    log.warning("The Dask cluster lost voxflow's model (%s): sending it to the workers again and resubmitting the chunks it cancelled", reason)
                    model = _scatter_model(client, bundle)
                waiting.appendleft(chunk)
            elif future.status == "error":
                exc = future.exception()
                if not is_file_specific(exc):
                    raise cannot_run(exc, client.scheduler.address)
                again, lost = split_or_reject(chunk, exc)
                waiting.extendleft(reversed(again))
                if lost:
                    _record(outcome, stores, ChunkResult(chunk_id=-1, table=rows_to_table([]), rejected=lost), run_id, bundle, progress, monitor, on_progress)
            else:
                _record(outcome, stores, future.result(), run_id, bundle, progress, monitor, on_progress)
            future.release()
            sample_then_fill()
        return outcome


def _scatter_model(client: Client, bundle: ModelBundle) -> Future:
    """A copy of the model on every worker.

    Raises
    ------
    ClusterError
        When no worker joined the scheduler within the client's timeout.
    """
    # Unhashed: a content key would equal the one the previous fan-out of this process just released,
    # and the scheduler, forgetting it, cancels the chunks that depend on it ("lost dependencies").
    # A Ctrl-C takes effect once the workers have it (~0.1 s): interrupted, the scatter went on while the
    # command closed the client and the cluster, and the scheduler logged losing the model ("Removing worker
    # ... caused the cluster to lose scattered data", ERROR) or failing to copy it to a closing worker
    # ("Exception while handling op scatter", two tracebacks). A second Ctrl-C interrupts it at once (a
    # scatter waits up to 20 s for a first worker).
    try:
        with stops_deferred():
            return client.scatter(bundle, broadcast=True, hash=False)
    except TimeoutError as exc:  # distributed's "No valid workers found"
        raise ClusterError(f"the Dask scheduler at {client.scheduler.address} has no workers ({exc})") from exc


def _cancelled_for(future: Future, client: Client) -> str:
    """Why the scheduler cancelled a chunk, when it is still there to score it again.

    Raises
    ------
    ClusterError
        When the client lost its scheduler: every future of the run is cancelled with it.
    """
    try:
        future.result()
    except FutureCancelledError as exc:
        if exc.reason == "scheduler-connection-lost" or client.status != "running":
            raise _scheduler_lost(client) from exc
        return exc.reason
    raise AssertionError(f"{future.key} is {future.status}, not cancelled")


@contextmanager
def _scheduler_kept(client: Client) -> Iterator[None]:
    """Turns the error of a call to the client's scheduler once it went away (a result's gather, a sample of
    its workers: CommClosedError) into :class:`ClusterError`; other OSErrors (a feature file's) pass."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, CommClosedError) or client.status != "running":
            raise _scheduler_lost(client) from exc
        raise


def _scheduler_lost(client: Client) -> ClusterError:
    return ClusterError(f"Dask scheduler at {client.scheduler.address} lost mid-run (connection lost): re-run to finish the rest")


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
    if outcome.inputs is not None and result.input_counts is not None:
        outcome.inputs.add(result.input_counts, result.table.num_rows)
    progress.advance(result.table.num_rows + len(result.rejected))
    timings = result.table.select(["decode_ms", "features_ms"]).to_pydict()
    monitor.add_files([(d + f) / 1e3 for d, f in zip(timings["decode_ms"], timings["features_ms"])], [r["stage"] for r in result.rejected])
    on_progress(progress, result, inserted)
