"""The input-drift check: what it costs a run, and what it sees.

Cost (default): counting a chunk's feature matrix into the champion's profile bins, next to scoring that matrix
(XGBoost and its SHAP explanations: the worker's work it sits beside, after decoding and features), adding the
counts to the run's tally (the flow process's part), and comparing a run at its end. ``--chunks`` random matrices of
``--chunk`` rows, the shipped baseline; each round counts and scores every chunk, alternating which goes first.
Figures are medians over rounds.

    .venv/bin/python bench/drift.py --chunks 200 --chunk 48 --rounds 5

What it sees (``--voiced``): VOICED's records split in two halves (alternate records: one subject each); a profile of
the first half's features as recorded; the second half compared with it as recorded (the control: nothing should be
called shifted) and after each change a recording setup could make (the level, white noise, a telephone band, a
brighter microphone), all of it and its first 40 records, with the product's own decoding and features.

    .venv/bin/python bench/drift.py --voiced ../shared/data/voiced
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.signal import butter, lfilter, sosfiltfilt

from common import report
from features.audio import Audio, decode_audio
from features.extract import extract_features
from features.schema import FEATURE_NAMES
from models.artifact import score
from models.drift import InputTally, compare, input_profile, profile_counts
from models.registry import shipped_bundle


def _white_noise(snr_db: float) -> Callable[[np.ndarray, int], np.ndarray]:
    def add(samples: np.ndarray, rate: int) -> np.ndarray:
        rng = np.random.default_rng(len(samples))
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        return samples + rng.normal(0, rms / 10 ** (snr_db / 20), len(samples))
    return add


def _telephone_band(samples: np.ndarray, rate: int) -> np.ndarray:
    return sosfiltfilt(butter(4, [300, 3400], btype="bandpass", fs=rate, output="sos"), samples)


CHANGES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "as recorded (control)": lambda samples, rate: samples,
    "level -20 dB": lambda samples, rate: samples * 0.1,
    "white noise, 30 dB SNR": _white_noise(30),
    "white noise, 20 dB SNR": _white_noise(20),
    "white noise, 10 dB SNR": _white_noise(10),
    "telephone band 300-3400 Hz": _telephone_band,
    "brighter microphone (pre-emphasis 0.9)": lambda samples, rate: lfilter([1.0, -0.9], [1.0], samples),
}


def voiced_sensitivity(folder: Path, small: int) -> dict:
    """Features shifted in VOICED's second half, as recorded and after each of :data:`CHANGES`, against the first half."""
    card = shipped_bundle().card
    records = sorted(folder.glob("voice*.hea"))
    audio = [decode_audio(path, target_rate=16_000) for path in records]
    reference, held_out = audio[0::2], audio[1::2]

    def features(clips: list[Audio], change: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
        changed = (replace(clip, samples=np.asarray(change(clip.samples, clip.sample_rate), dtype=np.float32)) for clip in clips)
        return np.array([[row[name] for name in FEATURE_NAMES] for row in map(extract_features, changed)], dtype=np.float64)

    profile = input_profile(features(reference, CHANGES["as recorded (control)"]), FEATURE_NAMES)
    reads = card.training["selected_features"]
    result: dict = {"bench": "drift-voiced", "reference": len(reference), "compared": len(held_out), "small": small}
    for name, change in CHANGES.items():
        rows = features(held_out, change)
        for label, part in ((f"{len(rows)}", rows), (f"{small}", rows[:small])):
            tally = InputTally(profile, "first half", reads=reads)
            tally.add(profile_counts(profile, part, FEATURE_NAMES), len(part))
            report = compare(tally, psi_limit=0.25, alpha=0.01)
            result[f"{name} · {label}"] = f"{len(report.shifted)}/{report.checked} shifted, {report.shifted_read}/{len(reads)} read; top PSI {report.largest[0].psi:.2f} ({report.largest[0].feature})"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=48, help="rows per chunk (VOXFLOW_CHUNK_SIZE's default)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--voiced", type=Path, help="a VOICED folder: what the check sees instead of what it costs")
    parser.add_argument("--small", type=int, default=40, help="with --voiced: the smaller batch compared too")
    args = parser.parse_args()
    if args.voiced is not None:
        report(voiced_sensitivity(args.voiced, args.small))
        return
    bundle = shipped_bundle()
    card = bundle.card
    rng = np.random.default_rng(0)
    matrices = [rng.normal(size=(args.chunk, len(card.feature_names))) for _ in range(args.chunks)]
    count_s, score_s, add_s, compare_s = [], [], [], []
    for round_ in range(args.rounds):
        tally, spent = InputTally.of(card), {"count": 0.0, "score": 0.0, "add": 0.0}
        for i, matrix in enumerate(matrices):
            for step in (("count", "score") if (i + round_) % 2 else ("score", "count")):
                started = time.perf_counter()
                if step == "score":
                    score(bundle, matrix)
                else:
                    counts = profile_counts(card.input_profile, matrix, card.feature_names)
                spent[step] += time.perf_counter() - started
            started = time.perf_counter()
            tally.add(counts, len(matrix))
            spent["add"] += time.perf_counter() - started
        started = time.perf_counter()
        compared = compare(tally, psi_limit=0.25, alpha=0.01)
        compare_s.append(time.perf_counter() - started)
        for total, key in ((count_s, "count"), (score_s, "score"), (add_s, "add")):
            total.append(spent[key] / args.chunks)
    assert compared.n == args.chunks * args.chunk and compared.shifted, "random features must read as shifted"
    count_ms, score_ms = statistics.median(count_s) * 1e3, statistics.median(score_s) * 1e3
    report({
        "bench": "drift", "chunks": args.chunks, "chunk_rows": args.chunk, "rounds": args.rounds, "features": len(card.input_profile["features"]),
        "count_ms_per_chunk": round(count_ms, 3), "score_ms_per_chunk": round(score_ms, 3), "count_vs_score": round(count_ms / score_ms, 3),
        "count_us_per_file": round(count_ms * 1e3 / args.chunk, 2), "flow_add_us_per_chunk": round(statistics.median(add_s) * 1e6, 1),
        "compare_ms_per_run": round(statistics.median(compare_s) * 1e3, 3),
    })


if __name__ == "__main__":
    main()
