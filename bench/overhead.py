"""Orchestration overhead: `voxflow analyze` end to end vs plain worker processes, same files and count.

Goal: end to end >= 90 % of the plain processes' clips/s (Prefect + Dask + MongoDB + Redis + Parquet
included; start-up included on both sides). The two sides alternate over ``--rounds`` and the
figures are medians (see ``common.paired_rounds``); the voxflow rate is the flow's own (from its
start to its summary), the command rate adds the CLI's imports and Prefect's flow-run set-up.

    .venv/bin/python bench/overhead.py --clips 500 --rounds 3
    .venv/bin/python bench/overhead.py --clips 500 --rounds 3 --min-workers 1   # the default adaptive bounds
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import build_corpus, embedded_home, manifest_files, paired_rounds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-workers", type=int, help="adaptive scaling from this many workers up to --workers (default: a fixed size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            medians = paired_rounds(
                manifest, manifest_files(manifest, settings), settings, workers=args.workers, rounds=args.rounds, min_workers=args.min_workers
            )
    report({"bench": "overhead", "clips": args.clips, "workers": args.workers, "min_workers": args.min_workers or args.workers,
            "rounds": args.rounds, **medians, "goal": 0.9,
            "load_avg_1m": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
