"""The benchmarks' baseline: a plain multiprocessing.Pool running voxflow's per-file code, in a lean process.

Run by ``common.pool_rate`` as its own interpreter, so that the pool's spawned processes, which
import the parent's main module again, import only this file's few modules and the feature code
(not the benchmark's pandas, psutil, Redis and MongoDB clients: ~0.6 s of CPU per process). Work
goes out in chunks of 8 files, scored together as voxflow scores a chunk (one XGBoost call each).

    python bench/plain_pool.py JOB.json PROCESSES [--opensmile]

JOB.json holds ``files`` (FileRef fields), ``policy`` (AudioPolicy fields) and ``models_dir``.
Prints one JSON object: the files done and the seconds from the pool's creation to its last result.
With ``--opensmile`` each file is decoded as voxflow decodes it and goes through openSMILE
eGeMAPSv02 functionals instead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK = 8
SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
_STATE: dict = {}


def _voxflow_init(policy: dict, models_dir: str) -> None:
    from features.extract import warm_up
    from models.registry import load_bundle
    from tasks.chunk import AudioPolicy

    _STATE["policy"], _STATE["bundle"] = AudioPolicy(**policy), load_bundle(Path(models_dir))
    warm_up()


def _voxflow_chunk(chunk: list[dict]) -> int:
    from tasks.extract import score_chunk
    from tasks.ingest import FileRef

    return score_chunk(0, [FileRef(**ref) for ref in chunk], _STATE["policy"], _STATE["bundle"]).table.num_rows


def egemaps_smile():  # -> opensmile.Smile; opensmile is an optional benchmark peer
    """openSMILE's eGeMAPSv02 functionals extractor (88 features per clip); ImportError without the bench extra."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def _smile_init() -> None:
    _STATE["smile"] = egemaps_smile()


def _smile_chunk(chunk: list[dict]) -> int:
    from features.audio import decode_audio

    for ref in chunk:
        audio = decode_audio(ref["path"])  # as voxflow decodes: mono, 16 kHz
        _STATE["smile"].process_signal(audio.samples, audio.sample_rate)
    return len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path)
    parser.add_argument("processes", type=int)
    parser.add_argument("--opensmile", action="store_true")
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    files = job["files"]
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    os.environ.update(SINGLE_THREAD)
    if args.opensmile:
        setup, work = {"initializer": _smile_init}, _smile_chunk
    else:
        setup, work = {"initializer": _voxflow_init, "initargs": (job["policy"], job["models_dir"])}, _voxflow_chunk
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.processes, **setup) as pool:
        done = sum(pool.imap_unordered(work, chunks))
    print(json.dumps({"files": done, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
