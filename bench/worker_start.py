"""How fast local Dask workers start: forked from the preloaded forkserver vs spawned, same invocation.

Each measurement runs in a fresh interpreter, as every `voxflow analyze` does: a cluster of
``--workers`` warm workers (imports, numba kernels, warm-up plugin) and their memory, then adaptive
scaling raised to twice as many (what a growing backlog triggers). Methods alternate over ``--rounds``;
medians.

    .venv/bin/python bench/worker_start.py --workers 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, report

METHODS = ("spawn", "forkserver")


def measure(method: str, workers: int, home: Path) -> dict[str, float]:
    """In this process: seconds to start ``workers`` warm workers, their private and proportional memory
    (USS, PSS: pages shared with the forkserver count once; the last figure adds the forkserver's own PSS, its
    share of those pages, spread over the workers), then seconds to adapt up to twice as many."""
    import psutil

    from tasks.cluster import dask_client, local_worker_processes
    from tasks.forkserver import is_forkserver
    from voxflow.settings import Settings

    settings = Settings(home=home, dask_min_workers=workers, dask_max_workers=workers, dask_start_method=method)
    started = time.perf_counter()
    with dask_client(settings) as client:
        client.wait_for_workers(workers, timeout=120)
        client.run(lambda: None)  # every worker past its warm-up plugin
        ready = time.perf_counter()
        memory = [process.memory_full_info() for process in local_worker_processes(psutil.Process())]
        server_pss = sum(process.memory_full_info().pss for process in psutil.Process().children() if is_forkserver(process))
        client.cluster.adapt(minimum=2 * workers, maximum=2 * workers)
        client.wait_for_workers(2 * workers, timeout=120)
        client.run(lambda: None)
        grown = time.perf_counter()
    return {
        "start_s": ready - started, "adapt_up_s": grown - ready,
        "worker_uss_mib": statistics.mean(m.uss for m in memory) / 2**20, "worker_pss_mib": statistics.mean(m.pss for m in memory) / 2**20,
        "worker_pss_with_server_mib": (sum(m.pss for m in memory) + server_pss) / len(memory) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.workers, Path(args.home))))
        return
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as home:
        for _ in range(args.rounds):
            for method in METHODS:
                child = subprocess.run(
                    [sys.executable, __file__, "--child", method, "--workers", str(args.workers), "--home", home],
                    cwd=REPO, capture_output=True, text=True, check=True,
                )
                row = json.loads(child.stdout.strip().splitlines()[-1])
                print(f"  {method:<10} start {row['start_s']:.2f} s, adapt up {row['adapt_up_s']:.2f} s, "
                      f"worker USS {row['worker_uss_mib']:.0f} MiB, PSS {row['worker_pss_mib']:.0f} MiB "
                      f"({row['worker_pss_with_server_mib']:.0f} MiB with the forkserver's share)", flush=True)
                for key, value in row.items():
                    samples.setdefault(f"{method}_{key}", []).append(value)
    medians = {key: round(statistics.median(values), 3) for key, values in samples.items()}
    report({"bench": "worker_start", "workers": args.workers, "rounds": args.rounds, **medians,
            "load_avg_1m": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
