"""Orchestration overhead: `voxflow analyze` end to end vs plain worker processes, same files and count.

Goal: end to end >= 90 % of the plain processes' clips/s (Prefect + Dask + MongoDB + Redis + Parquet
included; start-up included on both sides).

    .venv/bin/python bench/overhead.py --clips 500
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
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            plain = pool_rate(manifest_files(manifest, settings), settings, args.workers)
            summary, _ = analyze(manifest, settings, workers=args.workers)
    report(
        {
            "bench": "overhead",
            "clips": args.clips,
            "workers": args.workers,
            "plain_processes_clips_per_s": round(plain, 2),
            "voxflow_clips_per_s": summary["clips_per_s"],
            "voxflow_share_of_plain": round(summary["clips_per_s"] / plain, 3),
            "goal": 0.9,
        }
    )


if __name__ == "__main__":
    main()
