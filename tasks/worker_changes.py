"""A scheduler plugin that publishes every worker added to or removed from a Dask cluster.

Kept apart, importing only distributed, because it is unpickled on the scheduler (a remote one too).
"""

from __future__ import annotations

from typing import Any

from distributed import Scheduler
from distributed.diagnostics.plugin import SchedulerPlugin

WORKER_TOPIC = "voxflow-workers"
ADDED, REMOVED = "worker added", "worker removed"


class WorkerChanges(SchedulerPlugin):
    """On the scheduler: logs ``{"worker": address, "change": ADDED | REMOVED}`` to :data:`WORKER_TOPIC`.

    The scheduler keeps the topic's latest changes, each stamped with its time, for clients to read
    (``Client.get_events``).
    """

    idempotent = True  # one instance per scheduler, however many runs register it
    name = "voxflow-worker-changes"

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        scheduler.log_event(WORKER_TOPIC, {"worker": worker, "change": ADDED})

    def remove_worker(self, scheduler: Scheduler, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
        scheduler.log_event(WORKER_TOPIC, {"worker": worker, "change": REMOVED})
