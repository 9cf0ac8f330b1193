"""Clips/s of `voxflow analyze` at each worker count, next to a plain multiprocessing.Pool of the same size.

The pool runs the same per-file code on the same clips in this invocation: the machine's practical
ceiling. Both include their start-up (processes, imports, JIT warm-up); at each count the two
alternate over ``--rounds`` and the figures are medians (see ``common.paired_rounds``).
With ``--clips-per-worker`` each count gets that many clips per worker (weak scaling), so every
run lasts about as long and start-up weighs the same at 1 and at 16 workers.

    .venv/bin/python bench/scaling.py --clips 500 --workers 1 2 --rounds 3
    .venv/bin/python bench/scaling.py --clips-per-worker 400 --workers 1 2 4 8 16 --rounds 1 --opensmile 16 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import build_corpus, embedded_home, manifest_files, paired_rounds, report, write_manifest
from plain_pool import egemaps_smile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--clips", type=int, default=500, help="the same clips at every worker count")
    sizes.add_argument("--clips-per-worker", type=int, help="this many clips per worker at each count instead")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--opensmile", type=int, nargs="+", default=[], metavar="WORKERS",
                        help="at these counts each round also runs openSMILE eGeMAPSv02 in the same pool (pip install -e '.[bench]')")
    args = parser.parse_args()
    if args.opensmile:
        try:
            egemaps_smile()  # fail now, not after minutes of runs
        except ImportError as exc:
            sys.exit(f"--opensmile: openSMILE cannot be imported ({exc}); pip install -e '.[bench]'")
    per_worker = args.clips_per_worker
    rows = {}
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        manifest = build_corpus(corpus, per_worker * max(args.workers) if per_worker else args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            every_file = manifest_files(manifest, settings)
            for workers in args.workers:
                files, count_manifest = every_file, manifest
                if per_worker:
                    files = every_file[: per_worker * workers]
                    count_manifest = write_manifest(corpus / f"manifest-{workers}.csv", [ref.path for ref in files])
                rows[str(workers)] = row = paired_rounds(
                    count_manifest, files, settings, workers=workers, rounds=args.rounds, opensmile=workers in args.opensmile
                )
                row["clips"] = len(files)
                print(f"{workers:>3} workers, {len(files)} clips: pool {row['pool_clips_per_s']:6.1f} clips/s · voxflow "
                      f"{row['voxflow_clips_per_s']:6.1f} clips/s ({row['voxflow_share_of_pool']:.0%} of the pool; "
                      f"command {row['voxflow_command_share_of_pool']:.0%})"
                      + (f" · openSMILE {row['opensmile_clips_per_s']:6.1f} clips/s (command "
                         f"{row['voxflow_command_over_opensmile']:.2f}x it)" if "opensmile_clips_per_s" in row else ""), flush=True)
    size = {"clips_per_worker": per_worker} if per_worker else {"clips": args.clips}
    report({"bench": "scaling", **size, "cpus": os.cpu_count(), "rounds": args.rounds, "workers": rows})


if __name__ == "__main__":
    main()
