"""Clips/s of `voxflow analyze` at each worker count, next to a plain multiprocessing.Pool of the same size.

The pool runs the same per-file code on the same clips in this invocation: the machine's practical
ceiling. Both include their start-up (processes, imports, JIT warm-up); at each count the two
alternate over ``--rounds`` and the figures are medians (see ``common.paired_rounds``).

    .venv/bin/python bench/scaling.py --clips 500 --workers 1 2 --rounds 3
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
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            files = manifest_files(manifest, settings)
            for workers in args.workers:
                rows[str(workers)] = row = paired_rounds(manifest, files, settings, workers=workers, rounds=args.rounds)
                print(f"{workers:>3} workers: pool {row['pool_clips_per_s']:6.1f} clips/s · voxflow {row['voxflow_clips_per_s']:6.1f} "
                      f"clips/s ({row['voxflow_share_of_pool']:.0%} of the pool)", flush=True)
    report({"bench": "scaling", "clips": args.clips, "cpus": os.cpu_count(), "rounds": args.rounds, "workers": rows})


if __name__ == "__main__":
    main()
