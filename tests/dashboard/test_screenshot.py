"""`voxflow dashboard` served for real and rendered in headless Chromium: the title and painted charts."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.dashboard.conftest import Seeded
from tests.dashboard.headless_chromium import render
from tests.voxflow_cli import REPO

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"voxflow dashboard exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the dashboard did not answer /_stcore/health")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_dashboard_renders_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))} | seeded.env
    env["PYTHONUNBUFFERED"] = "1"  # the URL line must reach the pipe before SIGTERM
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxflow.cli", "dashboard", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        page = render(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode(errors="replace")
    (tmp_path / "dashboard.png").write_bytes(page.png)
    assert f"URL: http://127.0.0.1:{port}" in output, output[-2000:]  # bound to the loopback default, not 0.0.0.0
    assert page.title == "Overview", page.title
    assert len(page.marks) >= 2 and min(page.marks) > 0, page.marks  # clips/min and per-day charts drew their marks
    image = Image.open(io.BytesIO(page.png)).convert("L")
    assert image.size == (1400, 900), image.size
    assert len(image.getcolors(256)) > 20  # text, metrics and charts, not a blank page
    if os.environ.get("VOXFLOW_SAVE_SCREENSHOT"):
        Path(os.environ["VOXFLOW_SAVE_SCREENSHOT"]).write_bytes(page.png)
