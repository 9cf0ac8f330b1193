"""Run the real ``voxflow`` CLI in a subprocess and read its ``--json`` output; the database it writes to, loopback ports (shared by tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pymongo
from pymongo.database import Database

REPO = Path(__file__).resolve().parents[1]


def server_env(*, home: Path, redis_url: str, mongo_uri: str, mongo_db: str, prefect_api: str) -> dict[str, str]:
    """Environment for CLI subprocesses on the test session's servers, with a MongoDB database of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))}
    env.update(
        VOXFLOW_HOME=str(home),
        VOXFLOW_REDIS_URL=redis_url,
        VOXFLOW_MONGO_URI=mongo_uri,
        VOXFLOW_MONGO_DB=mongo_db,
        VOXFLOW_DASK_MAX_WORKERS="2",
        PREFECT_API_URL=prefect_api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    return env


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prefect_api_call(env: dict[str, str], path: str, body: dict[str, Any] | None = None, *, attempts: int = 6) -> Any:
    """GET (or POST ``body`` to) ``path`` of the Prefect API in ``env``; a 503 (its SQLite busy) is tried again after
    its Retry-After, as Prefect's own client does."""
    request = urllib.request.Request(
        env["PREFECT_API_URL"].rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    for attempt in range(attempts):
        try:
            with _DIRECT.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(float(exc.headers.get("Retry-After") or 1))


def bare_env(home: Path, **variables: str) -> dict[str, str]:
    """A CLI environment with no VOXFLOW_/PREFECT_ variables but ``variables`` and a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))}
    return {**env, "VOXFLOW_HOME": str(home), **variables}


def assert_one_line_error(proc: subprocess.CompletedProcess, expected: str) -> None:
    """``proc`` failed as a refused command must: exit 2 and one line, ``voxflow: error: ...``, holding ``expected``."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("voxflow: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``voxflow ARGS`` to completion and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "voxflow.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def last_json(proc: subprocess.CompletedProcess) -> Any:
    """The JSON value on the last line of stdout (the contract of ``--json``)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``voxflow ARGS`` in a session of its own (so a test can kill it with its workers).

    Output goes to temporary files, not pipes: nobody reads it while the test waits, and a full pipe
    would stall the process.
    """
    stdout, stderr = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxflow.cli", *args], env=env, cwd=REPO, stdout=stdout, stderr=stderr, start_new_session=True
    )
    proc.output_files = (stdout, stderr)  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for a process from ``start_cli`` and return it, with its output, as a finished process."""
    proc.wait(timeout=timeout)
    out, err = (handle.seek(0) or handle.read() for handle in proc.output_files)  # type: ignore[attr-defined]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# One client per (URI, tz_aware) for the whole session, closed by close_env_clients (tests/conftest.py's test_settings).
_ENV_CLIENTS: dict[tuple[str, bool], pymongo.MongoClient] = {}


def env_db(env: dict[str, str], *, tz_aware: bool = False) -> Database:
    """The MongoDB database a CLI environment writes to, on a client shared by the session (not one per call)."""
    key = (env["VOXFLOW_MONGO_URI"], tz_aware)
    if key not in _ENV_CLIENTS:
        _ENV_CLIENTS[key] = pymongo.MongoClient(key[0], tz_aware=tz_aware)
    return _ENV_CLIENTS[key][env["VOXFLOW_MONGO_DB"]]


def close_env_clients() -> None:
    """Close the clients ``env_db`` opened (at the end of the session, before the servers stop)."""
    while _ENV_CLIENTS:
        _ENV_CLIENTS.popitem()[1].close()


def reserve_port(*, shared: bool = False) -> socket.socket:
    """A loopback TCP socket bound to a port the system picked, and not listening: close it to free the port.

    While it is open no other server can take the port, and connecting to it is refused: a closed port that stays
    closed. With ``shared``, sockets of this user that set SO_REUSEPORT may bind the port beside it (a server of the
    test's own listening there while the port stays held; bind(0) still never hands it out to anyone else).
    """
    held = socket.socket()
    if shared:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind(("127.0.0.1", 0))
    return held


def wait_for_predictions(env: dict[str, str], proc: subprocess.Popen, at_least: int, *, timeout_s: float = 240) -> None:
    """Block until ``at_least`` predictions are stored, while ``proc`` is still running (to interrupt it mid-run)."""
    predictions = env_db(env)["predictions"]
    deadline = time.monotonic() + timeout_s
    while predictions.count_documents({}) < at_least:
        assert proc.poll() is None, "the process finished before it could be interrupted"
        assert time.monotonic() < deadline, "no predictions appeared"
        time.sleep(0.2)
