"""Window scoring on VOICED: does scoring a recording by the mean of its windows beat one whole-clip vector?

    .venv/bin/python bench/windows.py [--seeds 0 1000 2000 3000 4000]

Each variant cuts every decoded 16 kHz recording into windows (or keeps it whole), computes the product's
own features per window (:func:`features.extract.extract_features`), trains the default recipe on the
window rows of the training recordings (each labelled as its recording) and scores a test recording by
the mean of its windows' probabilities. Folds are the product's: stratified, subject-grouped 5-fold over
recordings, repeat ``r`` drawn and fitted with ``seed + r``, 5 repeats per seed; every variant sees the
same folds. Prints mean ROC AUC per variant and seed, then one JSON object (mean over all folds) last.

The README's issue-5 paragraph reads this table: a gain that comes and goes as the windows move by 50 ms
is about how this cohort's recordings start and end, not about voices, so window scoring is not used.
"""

from __future__ import annotations

import argparse
import json
from multiprocessing import Pool
from typing import Callable

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from common import VOICED  # (common puts the repository on the path)
from features.audio import Audio, decode_audio
from features.extract import extract_features
from features.schema import FEATURE_NAMES
from models.train import fit_model
from tasks.labels import read_voiced_labels

RATE = 16_000
Windows = Callable[[int], list[tuple[int, int]]]  # samples in the clip -> (start, stop) of each window


def _from(offset_s: float, window_s: float) -> Windows:
    """Back-to-back windows of ``window_s`` from ``offset_s`` on; a tail shorter than a window is left out."""
    def cut(n: int) -> list[tuple[int, int]]:
        start, width = round(offset_s * RATE), round(window_s * RATE)
        return [(s, s + width) for s in range(start, n - width + 1, width)]
    return cut


def _hop(window_s: float, hop_s: float) -> Windows:
    def cut(n: int) -> list[tuple[int, int]]:
        width, hop = round(window_s * RATE), round(hop_s * RATE)
        return [(s, s + width) for s in range(0, n - width + 1, hop)]
    return cut


def _equal(window_s: float, tail_s: float = 0.0) -> Windows:
    """As many equal windows of at least ``window_s`` as cover the clip but its last ``tail_s``."""
    def cut(n: int) -> list[tuple[int, int]]:
        end = n - round(tail_s * RATE)
        edges = np.linspace(0, end, max(1, end // round(window_s * RATE)) + 1).round().astype(int)
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    return cut


def _from_end(window_s: float) -> Windows:
    def cut(n: int) -> list[tuple[int, int]]:
        width = round(window_s * RATE)
        return [(s - width, s) for s in range(n, width - 1, -width)]
    return cut


def _centred(window_s: float) -> Windows:
    def cut(n: int) -> list[tuple[int, int]]:
        width = round(window_s * RATE)
        return _from((n % width) / 2 / RATE, window_s)(n)
    return cut


VARIANTS: dict[str, Windows] = {
    "whole clip": lambda n: [(0, n)],
    "whole clip but its last 0.5 s": lambda n: [(0, n - RATE // 2)],
    "equal windows >= 1.5 s, all of it": _equal(1.5),
    "equal windows, all but the last 0.25 s": _equal(1.5, tail_s=0.25),
    "1.5 s from the first sample": _from(0.0, 1.5),
    "1.4 s from the first sample": _from(0.0, 1.4),
    "2 s, 1 s hop, from the first sample": _hop(2.0, 1.0),
    "1.5 s from 50 ms": _from(0.05, 1.5),
    "1.5 s from 100 ms": _from(0.10, 1.5),
    "1.5 s back from the last sample": _from_end(1.5),
    "1.5 s centred": _centred(1.5),
    "first 1.5 s only": lambda n: _from(0.0, 1.5)(n)[:1],
}


def _features(path: str) -> dict[str, np.ndarray]:
    """Per variant, the feature rows of one recording's windows."""
    audio = decode_audio(path, target_rate=RATE)
    rows = {}
    for name, cut in VARIANTS.items():
        windows = [audio.samples[start:stop] for start, stop in cut(len(audio.samples))]
        rows[name] = np.array([
            list(extract_features(Audio(samples=y, sample_rate=RATE, source_rate=audio.source_rate, channels=1, duration_s=len(y) / RATE)).values())
            for y in windows
        ]).reshape(len(windows), len(FEATURE_NAMES))
    return rows


def _fold_aucs(windows: list[np.ndarray], labels: np.ndarray, groups: np.ndarray, seed: int) -> list[float]:
    aucs = []
    for repeat in range(5):
        splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed + repeat)
        for train, test in splitter.split(np.zeros((len(labels), 1)), labels, groups):
            rows = np.concatenate([windows[i] for i in train])
            model = fit_model(rows, np.repeat(labels[train], [len(windows[i]) for i in train]), seed=seed + repeat)
            scores = [float(model.predict(windows[i]).mean()) for i in test]
            aucs.append(roc_auc_score(labels[test], scores))
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1000, 2000, 3000, 4000])
    parser.add_argument("--processes", type=int, default=2, help="feature extraction processes")
    args = parser.parse_args()
    recordings = read_voiced_labels(VOICED, max_file_bytes=10**9).rows
    with Pool(args.processes) as pool:
        per_recording = pool.map(_features, [row.path for row in recordings], chunksize=4)
    labels = np.array([row.label for row in recordings])
    groups = np.array([str(row.subject_id or row.sha256) for row in recordings])
    print(f"VOICED {len(labels)} recordings ({int(labels.sum())} pathological); mean AUC of 25 folds per seed, same folds for every variant")
    print(f"{'variant':<40} " + " ".join(f"{seed:>6}" for seed in args.seeds) + "    all")
    result = {}
    for name in VARIANTS:
        per_seed = [_fold_aucs([rows[name] for rows in per_recording], labels, groups, seed) for seed in args.seeds]
        result[name] = round(float(np.mean(np.concatenate(per_seed))), 4)
        print(f"{name:<40} " + " ".join(f"{np.mean(aucs):6.3f}" for aucs in per_seed) + f" {result[name]:6.3f}", flush=True)
    print(json.dumps({"bench": "windows", "seeds": args.seeds, "auc": result}))


if __name__ == "__main__":
    main()
