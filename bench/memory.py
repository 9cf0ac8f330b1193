"""Peak RSS per Dask worker while `voxflow analyze` runs on a small and a ten times larger batch.

Streaming means the peak does not grow with the batch: goal within 10 %.

    .venv/bin/python bench/memory.py --small 500 --large 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from common import REPO, build_corpus, check_all_scored, embedded_home, report

from tasks.cluster import local_worker_processes


def peak_worker_rss(manifest: Path, home: Path, workers: int) -> tuple[float, float]:
    """Run analyze and poll its Dask worker processes; return (max peak RSS MiB over workers, wall s)."""
    env = {**os.environ, "VOXFLOW_HOME": str(home), "VOXFLOW_DASK_MIN_WORKERS": str(workers),
           "VOXFLOW_DASK_MAX_WORKERS": str(workers), "VOXFLOW_MONGO_DB": f"bench_{time.time_ns()}", "PREFECT_LOGGING_LEVEL": "WARNING"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "voxflow.cli", "analyze", str(manifest), "--json"],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}

    def poll() -> None:
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                for worker in local_worker_processes(parent):
                    peaks[worker.pid] = max(peaks.get(worker.pid, 0), worker.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"analyze failed:\n{err[-4000:]}")
    check_all_scored(json.loads(out.strip().splitlines()[-1]))
    return max(peaks.values()) / 2**20, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        small = build_corpus(Path(tmp) / "small", args.small, seed=1)
        large = build_corpus(Path(tmp) / "large", args.large, seed=2)
        with embedded_home(Path(tmp) / "home") as settings:
            small_mib, small_s = peak_worker_rss(small, settings.home, args.workers)
            large_mib, large_s = peak_worker_rss(large, settings.home, args.workers)
    report(
        {
            "bench": "memory",
            "workers": args.workers,
            "small_clips": args.small,
            "large_clips": args.large,
            "small_peak_worker_rss_mib": round(small_mib, 1),
            "large_peak_worker_rss_mib": round(large_mib, 1),
            "growth": round(large_mib / small_mib - 1, 3),
            "small_wall_s": round(small_s, 1),
            "large_wall_s": round(large_s, 1),
        }
    )


if __name__ == "__main__":
    main()
