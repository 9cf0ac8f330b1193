"""A voxflow Dask worker's lost heartbeat is one line, not distributed's comm-stack traceback."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from distributed.comm.core import CommClosedError

from tasks.worker_logs import OneLineHeartbeatFailure, lost_heartbeats_in_one_line


@pytest.fixture
def worker_log() -> logging.Logger:
    """distributed's worker logger with the filter, writing to a buffer of its own (``worker_log.buffer``)."""
    log = logging.getLogger("distributed.worker")
    lost_heartbeats_in_one_line()
    lost_heartbeats_in_one_line()  # once per process, however often called
    assert sum(isinstance(f, OneLineHeartbeatFailure) for f in log.filters) == 1
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s - %(levelname)s - %(message)s"))
    log.addHandler(handler)
    log.buffer = buffer  # type: ignore[attr-defined]
    yield log
    log.removeHandler(handler)
    log.filters[:] = [f for f in log.filters if not isinstance(f, OneLineHeartbeatFailure)]


def test_a_lost_heartbeat_is_one_line_with_its_error(worker_log: logging.Logger) -> None:
    try:
        raise CommClosedError("in <TCP (closed) ConnectionPool.heartbeat_worker local=tcp://127.0.0.1:51876 remote=tcp://127.0.0.1:40023>: Stream is closed")
    except OSError:
        worker_log.exception("Failed to communicate with scheduler during heartbeat.")  # as distributed.worker.Worker.heartbeat logs it
    assert worker_log.buffer.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "distributed.worker - ERROR - Failed to communicate with scheduler during heartbeat. (CommClosedError: in <TCP (closed) "
        "ConnectionPool.heartbeat_worker local=tcp://127.0.0.1:51876 remote=tcp://127.0.0.1:40023>: Stream is closed)"
    ]


def test_any_other_error_keeps_its_traceback(worker_log: logging.Logger) -> None:
    try:
        raise ValueError("a task's own")
    except ValueError:
        worker_log.exception("Compute Failed")
    assert "Traceback (most recent call last)" in worker_log.buffer.getvalue() and "ValueError: a task's own" in worker_log.buffer.getvalue()  # type: ignore[attr-defined]


def test_the_workers_preload_installs_it() -> None:
    # What the forkserver imports before forking the workers, and the warm-up plugin in a spawned or remote one.
    probe = "import logging, tasks.worker_preload\nprint([type(f).__name__ for f in logging.getLogger('distributed.worker').filters])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == "['OneLineHeartbeatFailure']"
