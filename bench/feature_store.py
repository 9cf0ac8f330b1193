"""Reading the Parquet feature store as retraining does, before and after compaction: same rows, same invocation.

A synthetic store with the real chunk schema (voxflow's listing and feature columns, random values)
is written as analyze writes it (one file per chunk of ``--chunk`` files, ``--runs`` runs), copied, and
the copy compacted (``FeatureStore.compact``); each round then reads both as ``voxflow retrain`` does
(audio_sha256 and every feature), alternating which goes first. Figures are medians; the two frames
are checked equal.

    .venv/bin/python bench/feature_store.py --clips 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import report
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=48, help="rows per chunk file (analyze's largest chunk: VOXFLOW_CHUNK_SIZE)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
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
    read_chunked, read_merged = statistics.median(seconds["chunked"]), statistics.median(seconds["merged"])
    report({"bench": "feature_store", "clips": args.clips, "chunk": args.chunk, "runs": args.runs, "rounds": args.rounds,
            "chunk_files": files, "parts": len(compaction.parts), "compact_s": round(compact_s, 3), "chunked_mb": round(sizes["chunked"] / 1e6, 1), "merged_mb": round(sizes["merged"] / 1e6, 1),
            "read_chunked_s": round(read_chunked, 3), "read_merged_s": round(read_merged, 3), "read_speedup": round(read_chunked / read_merged, 1)})


if __name__ == "__main__":
    main()
