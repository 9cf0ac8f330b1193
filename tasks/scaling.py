"""Watch the Dask cluster during a run: record every change in the worker count with the policy's advice."""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timezone
from typing import Any, Collection, Mapping, Sequence

from distributed import Client

from store.cache import LiveMetrics
from store.mongo import ResultStore
from tasks.worker_changes import ADDED, REMOVED, WORKER_TOPIC, WorkerChanges
from voxflow.scaling import ERROR_STAGES, Bounds, Recommendation, Signals, Thresholds, percentile, recommend

LATENCY_WINDOW = 500
# The first event of a run: the workers of a cluster voxflow started, or those an existing cluster had.
CLUSTER_START, ATTACHED = "cluster start", "attached"

log = logging.getLogger(__name__)


def cluster_load(workers: dict[str, Any]) -> tuple[float | None, float | None]:
    """Mean CPU % and mean memory % of limit over the scheduler's worker entries."""
    if not workers:
        return None, None
    cpu = [min(float(w["metrics"].get("cpu", 0.0)), 100.0) for w in workers.values()]
    memory = [100.0 * w["metrics"].get("memory", 0) / w["memory_limit"] for w in workers.values() if w.get("memory_limit")]
    return sum(cpu) / len(cpu), (sum(memory) / len(memory) if memory else None)


def task_slots(bounds: Bounds, workers: Mapping[str, Mapping[str, Any]]) -> int:
    """Tasks the cluster runs at once: what a fan-out sizes its chunks and the chunks it keeps in flight for.

    A cluster voxflow started is sized for its ``bounds.max_workers`` single-threaded workers, those adaptive
    scaling may add included. An existing cluster (``bounds.existing``) is sized for the threads of its
    ``workers`` (the scheduler's entries) now, at least one: the client's own maximum says nothing of it.

    Examples
    --------
    >>> task_slots(Bounds(1, 2), {"w1": {"nthreads": 1}})
    2
    >>> task_slots(Bounds(1, None, "tcp://dask:8786"), {"w1": {"nthreads": 4}, "w2": {"nthreads": 4}})
    8
    >>> task_slots(Bounds(1, None, "tcp://dask:8786"), {})
    1
    """
    if bounds.existing is None and bounds.max_workers is not None:
        return bounds.max_workers
    return max(1, sum(int(worker["nthreads"]) for worker in workers.values()))


def task_counts(pending: Collection[Any], processing: Mapping[str, Sequence[Any]]) -> tuple[int, int]:
    """(processing, queued) of a run's tasks: ``pending`` keys the scheduler has on a worker, and those it has not yet.

    ``processing`` is ``Client.processing()``: each worker's assigned keys (executing or ready to run there).

    Examples
    --------
    >>> task_counts({"c0", "c1", "c2", "c3"}, {"w1": ["c0"], "w2": ["c1", "other-run"]})
    (2, 2)
    """
    assigned = {key for keys in processing.values() for key in keys}
    running = sum(1 for key in pending if key in assigned)
    return running, len(pending) - running


class ScalingMonitor:
    """Records every change in the worker count as a ``scaling_events`` document; samples the cluster after each chunk.

    The changes come from :class:`~tasks.worker_changes.WorkerChanges`, registered on the scheduler, which
    logs each one to its event topic: every sample (:meth:`observe`) reads the changes logged since the
    previous one and writes them with that sample's backlog, signals and the policy's advice. Each document
    carries the scheduler's time of the change, and a worker lost and restarted between two chunks is
    recorded too. (The changes are read, not subscribed to: a subscription travels on the client's batched
    stream, and changes the scheduler logged before it arrived, such as the first workers added, never
    reached the client.) A scheduler that refuses the plugin (one without voxflow installed) leaves the
    samples: the workers that came or went since the last one, stamped with its time. The first sample is
    recorded as the ``cluster start`` (from no workers), or on an existing cluster (``bounds.existing``) as
    ``attached`` (the workers it had: no change), and the policy's advice keeps to ``bounds``.

    Each sample also updates :attr:`slots` (:func:`task_slots`), first read when the monitor starts: an existing
    cluster's fan-out follows its workers as they come and go.

    Every sample also goes to the ``voxflow:metrics:workers`` Redis stream for the dashboard, with the run's
    tasks processing on workers and queued (submitted, not yet on a worker): the client's pending futures
    against one ``Client.processing()`` call, which lists only the keys assigned to workers.
    """

    def __init__(self, client: Client, *, results: ResultStore, metrics: LiveMetrics, thresholds: Thresholds, run_id: str, bounds: Bounds) -> None:
        self._client = client
        self._results = results
        self._metrics = metrics
        self._thresholds = thresholds
        self._run_id = run_id
        self._bounds = bounds
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._analysed = 0
        self._errors = 0
        self._last_change = float("-inf")  # the scheduler's time of the newest change read
        self._members: set[str] | None = None  # the workers as of the changes recorded
        self.max_workers_seen = 0
        self.slots = task_slots(bounds, client.scheduler_info(n_workers=-1)["workers"])  # before the first sample: the first chunks are sized by it
        try:
            client.register_plugin(WorkerChanges())
            self._heard = True
        except Exception as exc:  # whatever unpickling it on the scheduler raised
            log.warning("The Dask scheduler refused voxflow's worker-changes plugin (%s): worker changes are recorded per chunk", exc)
            self._heard = False

    def add_files(self, latencies_s: Sequence[float], rejected_stages: Sequence[str]) -> None:
        """Account for a finished chunk: its scored files' processing times and the stage of each file it rejected.

        Every file counts as analysed; only rejections at a pipeline stage (:data:`~voxflow.scaling.ERROR_STAGES`) are errors.
        """
        self._latencies.extend(latencies_s)
        self._analysed += len(latencies_s) + len(rejected_stages)
        self._errors += sum(1 for stage in rejected_stages if stage in ERROR_STAGES)

    def observe(self, backlog: int) -> Recommendation:
        """Sample the cluster now; record the changes in its workers since the last sample."""
        logged = self._client.get_events(WORKER_TOPIC) if self._heard else ()  # read before the workers: a change between is in both, and counted once
        workers = self._client.scheduler_info(n_workers=-1)["workers"]
        cpu, memory = cluster_load(workers)
        pending = [key for key, state in list(self._client.futures.items()) if state.status == "pending"]
        processing, queued = task_counts(pending, self._client.processing())
        signals = Signals(
            cpu_pct=cpu,
            p95_latency_s=percentile(list(self._latencies), 95),
            error_rate=self._errors / self._analysed if self._analysed else None,
            backlog=backlog,
            memory_pct=memory,
        )
        count = len(workers)
        self.slots = task_slots(self._bounds, workers)
        advice = recommend(signals, self._thresholds, workers=count, bounds=self._bounds)
        now = datetime.now(timezone.utc)

        first_sample = self._members is None
        if self._members is None:
            self._members = set(workers)
        members = self._members  # changed in place by change() below

        def record(at: datetime, before: int, reason: str) -> None:
            self._results.insert_scaling_event(
                {"time": at, "run_id": self._run_id, "workers_before": before, "workers_after": len(members), "backlog": backlog,
                 "reason": reason, "signals": signals.__dict__, "recommendation": advice.as_dict()}
            )
            self.max_workers_seen = max(self.max_workers_seen, len(members))

        def change(worker: str, what: str, at: datetime) -> None:
            if (worker in members) == (what == ADDED):
                return  # membership is by address: a change the first sample or an earlier event already showed
            before = len(members)
            if what == ADDED:
                members.add(worker)
            else:
                members.discard(worker)
            record(at, before, what)

        if first_sample:
            if self._bounds.existing:
                record(now, len(members), ATTACHED)
            else:
                record(now, 0, CLUSTER_START)
        else:  # the first sample's workers already show what was logged before it (a drain's earlier runs too)
            for timestamp, message in logged:
                if timestamp > self._last_change:
                    change(message["worker"], message["change"], datetime.fromtimestamp(timestamp, timezone.utc))
        self._last_change = max([self._last_change, *(timestamp for timestamp, _ in logged)])
        if not self._heard:
            for worker in set(workers) - members:
                change(worker, ADDED, now)
            for worker in members - set(workers):
                change(worker, REMOVED, now)
        self.max_workers_seen = max(self.max_workers_seen, count)
        self._metrics.record(
            "workers",
            {"run_id": self._run_id, "workers": count, "backlog": backlog, "processing": processing, "queued": queued, "cpu_pct": round(cpu or 0.0, 1),
             "memory_pct": round(memory or 0.0, 1), "p95_latency_s": round(signals.p95_latency_s or 0.0, 3), "action": advice.action},
        )
        return advice
