"""A reachable Dask scheduler, read through ``Client.scheduler_info``: workers, their CPU and memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from voxflow.errors import VoxflowError

WORKER_COLUMNS = ["worker", "cpu_pct", "memory_mb", "memory_limit_mb", "memory_pct", "executing", "ready"]


@dataclass(frozen=True)
class ClusterSnapshot:
    """Per-worker CPU/memory and task counts, with the Dask dashboard's URL when the scheduler serves one."""

    workers: pd.DataFrame
    dashboard_url: str | None

    @property
    def processing(self) -> int:
        return int(self.workers["executing"].sum())

    @property
    def queued(self) -> int:
        return int(self.workers["ready"].sum())

    @property
    def cpu_pct(self) -> float | None:
        return float(self.workers["cpu_pct"].mean()) if len(self.workers) else None

    @property
    def memory_pct(self) -> float | None:
        """The fullest worker's memory use: the one that would be killed first."""
        return float(self.workers["memory_pct"].max()) if len(self.workers) else None


def snapshot(info: dict[str, Any], scheduler_address: str) -> ClusterSnapshot:
    """Build a snapshot from a scheduler's ``scheduler_info()`` answer and Dask's dashboard link template."""
    from distributed.utils import format_dashboard_link

    rows = []
    for address, worker in info.get("workers", {}).items():
        metrics = worker.get("metrics", {})
        counts = metrics.get("task_counts", {})
        limit = worker.get("memory_limit") or 0
        memory = metrics.get("memory", 0)
        rows.append({
            "worker": str(worker.get("name", address)),
            "cpu_pct": float(metrics.get("cpu", 0.0)),
            "memory_mb": memory / 1e6,
            "memory_limit_mb": limit / 1e6 if limit else None,
            "memory_pct": 100.0 * memory / limit if limit else None,
            "executing": int(counts.get("executing", 0)),
            "ready": int(counts.get("ready", 0)),
        })
    port = info.get("services", {}).get("dashboard")
    host = urlsplit(scheduler_address).hostname
    # Dask's own template (distributed.dashboard.link, DASK_DISTRIBUTED__DASHBOARD__LINK): where a browser reaches the
    # dashboard may not be where this process reaches the scheduler (a container network's host name).
    url = format_dashboard_link(host, port) if port and host else None
    return ClusterSnapshot(pd.DataFrame(rows, columns=WORKER_COLUMNS), url)


def read_scheduler(address: str, *, timeout_s: float = 2.0) -> ClusterSnapshot | None:
    """Ask the scheduler at ``address`` for its workers; None when it does not answer in ``timeout_s``
    (also when it accepts the connection and stays silent, as a stopped scheduler does: the page went blank)."""
    from tasks.cluster import connect_scheduler

    try:
        with connect_scheduler(address, timeout_s=timeout_s, set_as_default=False) as client:
            return snapshot(client.scheduler_info(), address)
    except (OSError, TimeoutError, VoxflowError):
        return None
