"""Runs still recorded "running": which have ended (their process gone), and refusing work while others run."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from typing import Any

import psutil

from store.mongo import ResultStore
from voxflow.errors import LockError


def close_abandoned_runs(results: ResultStore) -> list[str]:
    """Mark as "crashed" the runs still "running" or "paused" whose process on this host has ended (killed, or its
    machine restarted), with the counts they stored; returns their run ids.

    Runs started on other hosts are left alone: whether their process lives cannot be seen from here.
    """
    host, closed = socket.gethostname(), []
    for run in results.running_runs(host, paused=True):
        if _process_lives(run.get("pid"), run.get("pid_started")):
            continue
        results.finish_run(run["run_id"], {
            "status": "crashed", "finished_at": datetime.now(timezone.utc), **results.stored_counts(run["run_id"]),
            "error": f"its process (pid {run.get('pid')} on {host}) ended before the run finished; a re-run finishes the rest",
        })
        closed.append(run["run_id"])
    return closed


SHOWN_RUNS = 5  # running runs a refusal names


def run_owner(run: dict[str, Any]) -> str:
    """``RUN_ID (pid P on HOST)``, as far as the run's document says."""
    owner = " on ".join(str(part) for part in (f"pid {run['pid']}" if run.get("pid") is not None else None, run.get("host")) if part)
    return f"{run['run_id']} ({owner})" if owner else str(run["run_id"])


def refuse_while_running(
    results: ResultStore, doing: str, *, harm: str, force: bool, paused_wait: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """Close this host's abandoned runs, then refuse ``doing`` while runs (on any host) are still "running" or
    "paused", unless ``force``.

    Parameters
    ----------
    results : ResultStore
        The database whose runs are asked.
    doing, harm : str
        What is refused ("rebuilding the counts"), and what it would do to a running run's results
        ("lost or counted twice").
    force : bool
        Go on whatever runs are recorded running (they are known to have ended, e.g. on another host).
    paused_wait : bool
        Paused runs wait for what the caller holds (a drain pauses for a forget, which holds the drain lock):
        only "running" ones refuse.

    Returns
    -------
    tuple
        The run ids closed as crashed, and the runs still "running" that ``force`` went past.

    Raises
    ------
    LockError
        One line naming the runs, when runs are running and not ``force``.
    """
    closed = close_abandoned_runs(results)
    running = results.running_runs(paused=not paused_wait)  # on any host: one elsewhere may be writing
    if running and not force:
        host = socket.gethostname()
        named = ", ".join(run_owner(run) for run in running[:SHOWN_RUNS]) + (f" and {len(running) - SHOWN_RUNS} more" if len(running) > SHOWN_RUNS else "")
        elsewhere = any(run.get("host") != host for run in running)
        raise LockError(
            f"not {doing} while runs are running ({len(running)}: {named}): what a run stores meanwhile could be {harm}. "
            "Re-run once `voxflow runs` shows none running, or add --force if these have ended"
            + (f" (a run started on another host than {host} is never closed from here: whether its process lives cannot be seen)" if elsewhere else "")
        )
    return closed, running


def _process_lives(pid: int | None, started: float | None) -> bool:
    try:
        # The start time tells a reused pid from the run's own process.
        return pid is not None and started is not None and abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.Error:
        return False
