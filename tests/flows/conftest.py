"""Run the real ``voxflow`` CLI in subprocesses against the session's real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from voxflow import services
from voxflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(test_settings: Settings, prefect_api: str, redis_client) -> dict[str, str]:
    """Environment for one test's CLI runs: its own MongoDB database, a clean Redis database."""
    redis_client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))}
    env.update(
        VOXFLOW_HOME=str(test_settings.home),
        VOXFLOW_REDIS_URL=services.redis_url(test_settings),
        VOXFLOW_MONGO_URI=services.mongo_uri(test_settings),
        VOXFLOW_MONGO_DB=f"t_{uuid.uuid4().hex[:10]}",
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
    """The JSON object on the last line of stdout (the contract of ``--json``)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
