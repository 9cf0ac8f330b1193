"""Watch the Dask cluster during a run: record every change in the worker count with the policy's advice."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import Any, Collection, Mapping, Sequence

from distributed import Client

from store.cache import LiveMetrics
from store.mongo import ResultStore
from voxflow.scaling import Recommendation, Signals, Thresholds, percentile, recommend

LATENCY_WINDOW = 500


def cluster_load(workers: dict[str, Any]) -> tuple[float | None, float | None]:
    """Mean CPU % and mean memory % of limit over the scheduler's worker entries."""
    if not workers:
        return None, None
    cpu = [min(float(w["metrics"].get("cpu", 0.0)), 100.0) for w in workers.values()]
    memory = [100.0 * w["metrics"].get("memory", 0) / w["memory_limit"] for w in workers.values() if w.get("memory_limit")]
    return sum(cpu) / len(cpu), (sum(memory) / len(memory) if memory else None)


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
    """Samples the cluster after each chunk; writes a ``scaling_events`` document when the worker count changes.

    Every sample also goes to the ``voxflow:metrics:workers`` Redis stream for the dashboard, with the run's
    tasks processing on workers and queued (submitted, not yet on a worker): the client's pending futures
    against one ``Client.processing()`` call, which lists only the keys assigned to workers.
    """

    def __init__(self, client: Client, *, results: ResultStore, metrics: LiveMetrics, thresholds: Thresholds, run_id: str, min_workers: int, max_workers: int) -> None:
        self._client = client
        self._results = results
        self._metrics = metrics
        self._thresholds = thresholds
        self._run_id = run_id
        self._bounds = (min_workers, max_workers)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._analysed = 0
        self._errors = 0
        self.workers: int | None = None
        self.max_workers_seen = 0

    def add_files(self, latencies_s: Sequence[float], errors: int) -> None:
        """Account for a finished chunk: per-file processing times and how many files failed."""
        self._latencies.extend(latencies_s)
        self._analysed += len(latencies_s) + errors
        self._errors += errors

    def observe(self, backlog: int) -> Recommendation:
        """Sample the cluster now; record an event if the worker count moved since the last sample."""
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
        advice = recommend(signals, self._thresholds, workers=count, min_workers=self._bounds[0], max_workers=self._bounds[1])
        now = datetime.now(timezone.utc)
        if count != self.workers:
            self._results.insert_scaling_event(
                {
                    "time": now,
                    "run_id": self._run_id,
                    "workers_before": self.workers or 0,
                    "workers_after": count,
                    "backlog": backlog,
                    "reason": "cluster start" if self.workers is None else "dask adaptive",
                    "signals": signals.__dict__,
                    "recommendation": advice.as_dict(),
                }
            )
        self.workers = count
        self.max_workers_seen = max(self.max_workers_seen, count)
        self._metrics.record(
            "workers",
            {"run_id": self._run_id, "workers": count, "backlog": backlog, "processing": processing, "queued": queued, "cpu_pct": round(cpu or 0.0, 1),
             "memory_pct": round(memory or 0.0, 1), "p95_latency_s": round(signals.p95_latency_s or 0.0, 3), "action": advice.action},
        )
        return advice
