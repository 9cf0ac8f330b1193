"""Plain helpers (not fixtures) shared by tests in more than one folder."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from pymongo.database import Database

from store.backup import COLLECTIONS


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
