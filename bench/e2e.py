"""End-to-end throughput: `voxflow analyze` vs a plain single-process loop over the same feature code.

Both run in this invocation on the same clips (the VOICED recordings plus synthetic 5 s vowels to
reach --clips). Prints a human table, then one JSON object on the last line.

    .venv/bin/python bench/e2e.py --clips 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features.synth import synth_vowel  # noqa: E402
from models.registry import load_bundle  # noqa: E402
from tasks.extract import AudioPolicy, score_chunk  # noqa: E402
from tasks.ingest import discover  # noqa: E402
from voxflow import services  # noqa: E402
from voxflow.settings import Settings  # noqa: E402

VOICED = REPO.parent / "shared" / "data" / "voiced"


def build_corpus(folder: Path, clips: int) -> Path:
    """Manifest of the VOICED records (when present) topped up with unique synthetic vowels."""
    paths = [str(p) for p in sorted(VOICED.glob("voice*.hea"))][:clips]
    rng = np.random.default_rng(0)
    for i in range(clips - len(paths)):
        pathological = i % 2 == 1
        y = synth_vowel(
            f0_hz=float(rng.uniform(90, 260)), duration_s=5.0, sr=16_000, seed=i,
            jitter=0.02 if pathological else 0.004, shimmer=0.1 if pathological else 0.03, hnr_db=9.0 if pathological else 24.0,
        )
        path = folder / f"synth{i:05d}.wav"
        sf.write(path, y, 16_000)
        paths.append(str(path))
    manifest = folder / "manifest.csv"
    pd.DataFrame({"path": paths}).to_csv(manifest, index=False)
    return manifest


def plain_loop(manifest: Path, settings: Settings) -> float:
    """Clips/s of one process: decode, gate, features and score, file after file, no orchestration."""
    files = discover(str(manifest), max_file_bytes=int(settings.max_file_mb * 1e6)).files
    policy, bundle = AudioPolicy.from_settings(settings), load_bundle(settings.models_dir)
    score_chunk(0, files[:2], policy, bundle)  # JIT warm-up, as each Dask worker does once
    started = time.perf_counter()
    for i, ref in enumerate(files):
        score_chunk(i, [ref], policy, bundle)
    return len(files) / (time.perf_counter() - started)


def end_to_end(manifest: Path, home: Path, env: dict[str, str]) -> tuple[dict, float]:
    """Run the real CLI; return its summary and the command's own wall time (imports and cluster included)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "voxflow.cli", "analyze", str(manifest), "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"analyze failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, dask_max_workers=args.workers)
        manifest = build_corpus(Path(tmp), args.clips)
        env = {**os.environ, "VOXFLOW_HOME": str(home), "VOXFLOW_DASK_MAX_WORKERS": str(args.workers),
               "VOXFLOW_DASK_MIN_WORKERS": str(args.workers), "PREFECT_LOGGING_LEVEL": "WARNING"}
        started = time.perf_counter()
        services.ensure_all(settings)
        services_s = time.perf_counter() - started
        try:
            baseline = plain_loop(manifest, settings)
            summary, command_s = end_to_end(manifest, home, env)
        finally:
            services.stop_services(settings)
    analysed = summary["scored"] + summary["quarantined"]
    result = {
        "bench": "e2e",
        "clips": args.clips,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "plain_loop_clips_per_s": round(baseline, 2),
        "e2e_flow_clips_per_s": summary["clips_per_s"],
        "e2e_command_clips_per_s": round(analysed / command_s, 2),
        "e2e_command_wall_s": round(command_s, 2),
        "flow_wall_s": summary["wall_s"],
        "services_start_s": round(services_s, 2),
        "speedup_flow_vs_plain_loop": round(summary["clips_per_s"] / baseline, 3),
        "python": platform.python_version(),
    }
    width = max(map(len, result))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in result.items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
