"""Run the real ``voxflow`` CLI in a subprocess and read its ``--json`` output (shared by tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``voxflow ARGS`` to completion and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "voxflow.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def last_json(proc: subprocess.CompletedProcess) -> Any:
    """The JSON value on the last line of stdout (the contract of ``--json``)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
