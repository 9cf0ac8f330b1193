"""Clips/s of `voxflow analyze` at each worker count, next to a plain multiprocessing.Pool of the same size.

The pool runs the same per-file code on the same clips in this invocation: the machine's practical
ceiling. Both include their start-up (processes, imports, JIT warm-up).

    .venv/bin/python bench/scaling.py --clips 500 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import analyze, build_corpus, embedded_home, manifest_files, pool_rate, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            files = manifest_files(manifest, settings)
            for workers in args.workers:
                pool = pool_rate(files, settings, workers)
                summary, _ = analyze(manifest, settings, workers=workers)
                rows[str(workers)] = {
                    "pool_clips_per_s": round(pool, 2),
                    "voxflow_clips_per_s": summary["clips_per_s"],
                    "voxflow_over_pool": round(summary["clips_per_s"] / pool, 3),
                }
                print(f"{workers:>3} workers: pool {pool:6.1f} clips/s · voxflow {summary['clips_per_s']:6.1f} clips/s "
                      f"({rows[str(workers)]['voxflow_over_pool']:.0%} of the pool)")
    report({"bench": "scaling", "clips": args.clips, "cpus": os.cpu_count(), "workers": rows})


if __name__ == "__main__":
    main()
