"""``voxflow dashboard``: the Streamlit command line it runs, and the process it becomes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import psutil

from tests.voxflow_cli import REPO, bare_env
from voxflow.cli import build_parser, dashboard_command
from voxflow.settings import Settings


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_binds_to_loopback_headless_without_usage_stats() -> None:
    argv = dashboard_command(Settings())
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    assert _option(argv, "--server.address") == "127.0.0.1" and _option(argv, "--server.port") == "8501"
    assert _option(argv, "--server.headless") == "true" and _option(argv, "--browser.gatherUsageStats") == "false"


def test_port_flag_and_address_setting() -> None:
    args = build_parser().parse_args(["dashboard", "--port", "9123"])
    argv = dashboard_command(Settings(dashboard_address="0.0.0.0"), args.port)
    assert (_option(argv, "--server.address"), _option(argv, "--server.port")) == ("0.0.0.0", "9123")


def test_port_zero_is_passed_on_for_streamlit_to_pick_one() -> None:
    args = build_parser().parse_args(["dashboard", "--port", "0"])
    assert _option(dashboard_command(Settings(dashboard_port=9123), args.port), "--server.port") == "0"
    assert _option(dashboard_command(Settings(dashboard_port=9123)), "--server.port") == "9123"


def test_a_sigterm_to_the_command_stops_the_server(tmp_path: Path) -> None:
    # A service manager (or `kill PID`) signals the process it started: the Streamlit child of that process
    # had outlived it, re-parented to init and holding the port.
    proc = subprocess.Popen([sys.executable, "-m", "voxflow.cli", "dashboard", "--port", "0"], env={**bare_env(tmp_path), "PYTHONUNBUFFERED": "1"},
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the server listens once it prints its URL
            if "URL: http://" in line:
                break
        else:
            raise AssertionError(f"the dashboard exited with {proc.wait()} before serving")
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        left = [p for p in psutil.process_iter() if _session(p) == proc.pid]
        assert left == [], [p.cmdline() for p in left]
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _session(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
