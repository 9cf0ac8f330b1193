"""Run the real ``voxflow`` CLI in a subprocess and read its ``--json`` output (shared by tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``voxflow ARGS`` to completion and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "voxflow.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def last_json(proc: subprocess.CompletedProcess) -> Any:
    """The JSON value on the last line of stdout (the contract of ``--json``)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
