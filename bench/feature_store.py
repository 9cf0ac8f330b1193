"""Reading the Parquet feature store as retraining does, before and after compaction: same rows, same invocation.

A synthetic store with the real chunk schema (voxflow's listing and feature columns, random values)
is written as analyze writes it (one file per chunk of ``--chunk`` files, ``--runs`` runs), copied, and
the copy compacted (``FeatureStore.compact``); each round then reads both as ``voxflow retrain`` does
(audio_sha256 and every feature), alternating which goes first. Figures are medians; the two frames
are checked equal. Then the merged store is read whole, and for ``--labelled`` contents only (``hashes=``, as
a retrain reads its labelled recordings), each in a fresh interpreter, for its time and its peak RSS over that of one that reads nothing.

    .venv/bin/python bench/feature_store.py --clips 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, report
from features.schema import FEATURE_NAMES, FEATURE_VERSION
from store.feature_store import FeatureStore
from tasks.chunk import rows_to_table


def write_store(root: Path, *, clips: int, chunk: int, runs: int, seed: int = 0) -> int:
    """Write ``clips`` rows as chunk files of ``chunk`` rows spread over ``runs`` runs; returns the files written."""
    store, rng, files = FeatureStore(root), np.random.default_rng(seed), 0
    for first in range(0, clips, chunk):
        rows = [
            {"audio_sha256": f"{first + i:064x}", "path": f"/data/batch/clip{first + i:07d}.wav", "subject_id": f"s{(first + i) // 3}",
             "reference_label": None, "size_bytes": 160_044, "duration_s": 5.0, "source_rate": 16_000, "channels": 1, "quality_flags": [],
             "decode_ms": 1.0, "features_ms": 40.0, **dict(zip(FEATURE_NAMES, rng.normal(size=len(FEATURE_NAMES)))),
             "score": 0.5, "label": "healthy", "top_factors": "[]"}
            for i in range(min(chunk, clips - first))
        ]
        run = files % runs
        store.write_chunk(rows_to_table(rows), feature_version=FEATURE_VERSION, run_id=f"run{run:04d}", chunk_id=files // runs)
        files += 1
    return files


# One read in a fresh interpreter that imports only the store (and pandas); "skip" reads nothing, for the baseline.
_READ_ALONE = """
import json, re, sys, time
from pathlib import Path
import pandas
from store.feature_store import FeatureStore
root, version, columns, hashes = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
started, rows = time.perf_counter(), 0
if hashes != "skip":
    rows = len(FeatureStore(root).read(feature_version=version, columns=columns, hashes=None if hashes is None else set(hashes)))
# VmHWM, this process image's own peak: getrusage's ru_maxrss keeps the forking parent's across exec.
peak_kb = int(re.search(r"VmHWM:\\s*(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps([time.perf_counter() - started, peak_kb / 1024, rows]))
"""


def read_alone(root: Path, columns: list[str], hashes: set[str] | str | None) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and rows of one read of ``root`` in a fresh interpreter (``hashes="skip"``: no read)."""
    wanted = hashes if hashes is None or isinstance(hashes, str) else sorted(hashes)
    argv = [sys.executable, "-c", _READ_ALONE, str(root), str(FEATURE_VERSION), json.dumps(columns), json.dumps(wanted)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO)
    seconds, peak_mb, rows = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, peak_mb, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=48, help="rows per chunk file (analyze's largest chunk: VOXFLOW_CHUNK_SIZE)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--labelled", type=int, default=1000, help="contents a retrain asks for (read with hashes=), among --clips")
    args = parser.parse_args()
    columns = ["audio_sha256", *FEATURE_NAMES]
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-store-") as tmp:
        chunked, merged = Path(tmp) / "chunked", Path(tmp) / "merged"
        files = write_store(chunked, clips=args.clips, chunk=args.chunk, runs=args.runs)
        shutil.copytree(chunked, merged)
        started = time.perf_counter()
        compaction = FeatureStore(merged).compact(feature_version=FEATURE_VERSION)
        compact_s = time.perf_counter() - started
        seconds: dict[str, list[float]] = {"chunked": [], "merged": []}
        frames = {}
        for round_ in range(args.rounds):
            for name in (("chunked", "merged") if round_ % 2 == 0 else ("merged", "chunked")):
                started = time.perf_counter()
                frames[name] = FeatureStore(Path(tmp) / name).read(feature_version=FEATURE_VERSION, columns=columns)
                seconds[name].append(time.perf_counter() - started)
        if not frames["chunked"].equals(frames["merged"]) or len(frames["merged"]) != args.clips:
            raise SystemExit("the compacted store does not read as the chunked one")
        sizes = {name: FeatureStore(Path(tmp) / name).inventory(feature_version=FEATURE_VERSION)["bytes"] for name in seconds}
        labelled = {f"{i:064x}" for i in range(0, args.clips, max(1, args.clips // args.labelled))}
        _, idle_mb, _ = read_alone(merged, columns, "skip")
        whole_s, whole_mb, _ = read_alone(merged, columns, None)
        some_s, some_mb, some_rows = read_alone(merged, columns, labelled)
        if some_rows != len(labelled):
            raise SystemExit(f"the read of {len(labelled)} contents gave {some_rows} rows")
    read_chunked, read_merged = statistics.median(seconds["chunked"]), statistics.median(seconds["merged"])
    report({"bench": "feature_store", "clips": args.clips, "chunk": args.chunk, "runs": args.runs, "rounds": args.rounds,
            "chunk_files": files, "parts": len(compaction.parts), "compact_s": round(compact_s, 3), "chunked_mb": round(sizes["chunked"] / 1e6, 1), "merged_mb": round(sizes["merged"] / 1e6, 1),
            "read_chunked_s": round(read_chunked, 3), "read_merged_s": round(read_merged, 3), "read_speedup": round(read_chunked / read_merged, 1),
            "labelled": len(labelled), "merged_read_all_s": round(whole_s, 3), "merged_read_all_rss_rise_mb": round(whole_mb - idle_mb),
            "merged_read_labelled_s": round(some_s, 3), "merged_read_labelled_rss_rise_mb": round(some_mb - idle_mb)})


if __name__ == "__main__":
    main()
