"""End-to-end throughput: `voxflow analyze` vs a plain single-process loop over the same code, same clips.

    .venv/bin/python bench/e2e.py --clips 500
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from common import analyze, build_corpus, embedded_home, loop_rate, manifest_files, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        started = time.perf_counter()
        with embedded_home(Path(tmp) / "home") as settings:
            services_s = time.perf_counter() - started
            baseline = loop_rate(manifest_files(manifest, settings), settings)
            summary, command_s = analyze(manifest, settings, workers=args.workers)
    analysed = summary["scored"] + summary["quarantined"]
    report(
        {
            "bench": "e2e",
            "clips": args.clips,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "plain_loop_clips_per_s": round(baseline, 2),
            "e2e_flow_clips_per_s": summary["clips_per_s"],
            "e2e_command_clips_per_s": round(analysed / command_s, 2),
            "e2e_command_wall_s": round(command_s, 2),
            "services_start_s": round(services_s, 2),
            "speedup_flow_vs_plain_loop": round(summary["clips_per_s"] / baseline, 3),
            "python": platform.python_version(),
        }
    )


if __name__ == "__main__":
    main()
