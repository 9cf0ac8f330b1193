"""Plain helpers (not fixtures) shared by tests in more than one folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import psutil
from distributed import Client
from pymongo.database import Database

from store.backup import COLLECTIONS
from tests.voxflow_cli import REPO

if TYPE_CHECKING:  # numpy only where it is used: the forkserver probe imports this module in a CLI process
    import numpy as np


def voiced_record(folder: Path, record: str, diagnosis: str | None, *, header: bool = True) -> None:
    """A VOICED-like record in ``folder``: its -info.txt (with a Diagnosis line unless None) and a small header and signal file."""
    folder.mkdir(exist_ok=True)
    (folder / f"{record}-info.txt").write_text(f"ID\t{record}\nAge:\t40\n" + (f"Diagnosis:\t{diagnosis}\n" if diagnosis else ""))
    if header:
        (folder / f"{record}.hea").write_text(f"{record} 1 8000 2\n{record}.dat 16 1 0 0 0 0 0 voice\n")
        (folder / f"{record}.dat").write_bytes(record.encode())


def snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every document of each backed-up collection, in ``_id`` order: equal snapshots mean identical contents."""
    return {name: sorted(db[name].find(), key=lambda doc: str(doc["_id"])) for name in COLLECTIONS}


def ended_process() -> dict[str, Any]:
    """The owner fields of a run whose process on this host has ended (as a killed run leaves them)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    return {"host": socket.gethostname(), "pid": proc.pid, "pid_started": started}


def sigint_action(pid: int) -> str:
    """What a SIGINT does to process ``pid`` (from Linux's /proc): "ignored", "caught" (Python's handler, say) or "default" (it ends)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    sigint = 1 << (signal.SIGINT - 1)
    if int(status["SigIgn"], 16) & sigint:
        return "ignored"
    return "caught" if int(status["SigCgt"], 16) & sigint else "default"


@dataclass(frozen=True)
class DaskProcesses:
    """A ``dask scheduler`` and its ``dask worker`` processes: an existing cluster as an operator runs one."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]
    logs: Path


@contextmanager
def dask_processes(folder: Path, *, workers: int = 2) -> Iterator[DaskProcesses]:
    """Start a scheduler on loopback and ``workers`` single-threaded workers that can import voxflow (their logs in
    ``folder``), once every worker has joined; on exit end them all, a stopped scheduler too.

    The scheduler binds a port of its own choosing (one picked free beforehand could be taken before it binds: a
    worker's connection to it can land on its own local port) and tells it in its file.
    """
    scheduler_file, logs, dask = folder / "scheduler.json", folder / "dask.log", str(Path(sys.executable).parent / "dask")
    with ExitStack() as stack:
        log = stack.enter_context(logs.open("w"))
        started: list[subprocess.Popen] = []

        @stack.callback
        def end() -> None:
            for process in started:
                os.killpg(process.pid, signal.SIGCONT)  # a stopped process ends only once it runs again
                os.killpg(process.pid, signal.SIGTERM)
            for process in started:
                process.wait(timeout=30)

        started.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(scheduler_file),
                                         "--dashboard-address", ":0"], stdout=log, stderr=log, start_new_session=True))
        started.extend(
            subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--nworkers", "1", "--dashboard-address", ":0",
                              "--name", f"w{i}"], stdout=log, stderr=log, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
            for i in range(workers)
        )
        address = _written_address(started[0], scheduler_file, logs)
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield DaskProcesses(address, started[0], started[1:], logs)


def _written_address(scheduler: subprocess.Popen, scheduler_file: Path, logs: Path) -> str:
    """The address the scheduler listens at, from the file it writes once its port is bound."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or half written
            pass
        assert scheduler.poll() is None and time.monotonic() < deadline, f"the scheduler wrote no address:\n{logs.read_text()[-3000:]}"
        time.sleep(0.05)


def like_training(spec: dict) -> np.ndarray:
    """Values of one feature that fall in an input profile's bins exactly as its training rows did (missing ones NaN)."""
    import numpy as np

    edges = spec["edges"]
    inside = [edges[0] - 1.0, *((a + b) / 2 for a, b in zip(edges, edges[1:])), edges[-1] + 1.0, np.nan]
    return np.repeat(inside, spec["counts"])


def above_training(spec: dict, rows: int) -> np.ndarray:
    """``rows`` values of one feature above every value of an input profile's training rows."""
    import numpy as np

    return np.full(rows, spec["edges"][-1] + 1.0)


def store_scored(settings: Any, db: Database, *, now: Any, features: np.ndarray, first: int, hours_ago: float, version: str, run_id: str) -> list[str]:
    """Predictions of ``version`` stored ``hours_ago`` before ``now``, and their rows (``features``, in the shipped
    baseline's column order) in the feature store of ``settings``; returns their content hashes."""
    from datetime import timedelta

    import numpy as np

    from features.schema import FEATURE_VERSION
    from models.registry import shipped_bundle
    from store.feature_store import FeatureStore
    from store.mongo import ResultStore
    from tasks.chunk import rows_to_table

    names = shipped_bundle().card.feature_names
    hashes = [f"{first + i:064x}" for i in range(len(features))]
    created = now - timedelta(hours=hours_ago)
    ResultStore(db).insert_predictions([
        {"audio_sha256": sha, "model_version": version, "run_id": run_id, "score": 0.5, "created_at": created} for sha in hashes
    ])
    rows = [
        {"audio_sha256": sha, "path": f"/c/{sha[-6:]}.wav", "subject_id": None, "reference_label": None, "size_bytes": 1, "duration_s": 2.0,
         "source_rate": 8000, "channels": 1, "quality_flags": [], "decode_ms": 1.0, "features_ms": 1.0,
         **{name: None if np.isnan(value) else float(value) for name, value in zip(names, row)}, "score": 0.5, "label": "healthy", "top_factors": "[]"}
        for sha, row in zip(hashes, features)
    ]
    FeatureStore(settings.feature_store_dir).write_chunk(rows_to_table(rows), feature_version=FEATURE_VERSION, run_id=run_id, chunk_id=0)
    return hashes

