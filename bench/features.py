"""Feature extraction cost per clip: voxflow's feature set vs openSMILE eGeMAPSv02 vs a naive librosa+Praat loop.

All three run in this one process, pinned to one core with one BLAS/OpenMP/numba thread, on the same
clips: the VOICED recordings (read from ``<repo>/../shared/data/voiced``, never copied) and
synthetic 5 s vowels over a grid of F0, jitter, shimmer and HNR. Each extractor is warmed up first
(imports, numba JIT, caches), then the clips are timed ``--repeats`` times in interleaved rounds;
the figure per extractor is the median over clips of each clip's median CPU time of this thread
(wall time beside it). Prints a table, then one JSON object on the last line.

openSMILE is a benchmark peer only (its licence forbids commercial use): install it with
``pip install -e '.[bench]'``; without it the bench says so and reports the other two.

    .venv/bin/python bench/features.py --clips 40 --repeats 3
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy, librosa and numba are imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import parselmouth  # noqa: E402
from parselmouth.praat import call  # noqa: E402

from common import VOICED, time_extractors  # noqa: E402  (common puts the repository on the path)
from plain_pool import egemaps_smile  # noqa: E402
from features.audio import Audio, decode_audio  # noqa: E402
from features.cepstral import cepstral_features  # noqa: E402
from features.extract import extract_features, warm_up  # noqa: E402
from features.formants import formant_features  # noqa: E402
from features.schema import FEATURE_NAMES, FEATURE_VERSION, N_MFCC  # noqa: E402
from features.spectral import spectral_features  # noqa: E402
from features.spectrogram import power_spectrogram  # noqa: E402
from features.synth import synth_vowel  # noqa: E402
from features.voice import analyse_pitch, voice_features  # noqa: E402

SR = 16_000
CLIP_S = 5.0
SYNTH_GRID = [
    dict(f0_hz=f0, jitter=jitter, shimmer=shimmer, hnr_db=hnr)
    for f0 in (100.0, 150.0, 220.0)
    for jitter, shimmer in ((0.005, 0.02), (0.02, 0.08))
    for hnr in (10.0, 25.0)
]
PRAAT_PERIODS = (0, 0, 0.0001, 0.02, 1.3)


def load_clips(n: int) -> list[tuple[str, np.ndarray]]:
    """Half VOICED records (when present), the rest synthetic 5 s vowels from SYNTH_GRID."""
    headers = sorted(VOICED.glob("voice*.hea"))
    n_voiced = min(len(headers), n // 2)
    picked = headers[:: max(1, len(headers) // max(n_voiced, 1))][:n_voiced]
    clips = [(h.stem, decode_audio(h).samples) for h in picked]
    for i in range(n - len(clips)):
        params = SYNTH_GRID[i % len(SYNTH_GRID)]
        clips.append((f"synth{i}", synth_vowel(duration_s=CLIP_S, sr=SR, seed=i, **params)))
    return clips


def voxflow(y: np.ndarray) -> object:
    return extract_features(Audio(samples=y, sample_rate=SR, source_rate=SR, channels=1, duration_s=len(y) / SR))


def naive(y: np.ndarray) -> dict[str, float]:
    """The same families the obvious way: each librosa call recomputes its STFT, one Praat call per
    measure, Praat's own harmonicity, formants and CPPS."""
    out: dict[str, float] = {}
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13)
    delta = librosa.feature.delta(mfcc)
    out.update({f"mfcc{i}": v for i, v in enumerate([*mfcc.mean(1), *mfcc.std(1), *delta.std(1)])})
    out["centroid"] = float(librosa.feature.spectral_centroid(y=y, sr=SR).mean())
    out["bandwidth"] = float(librosa.feature.spectral_bandwidth(y=y, sr=SR).mean())
    out["rolloff"] = float(librosa.feature.spectral_rolloff(y=y, sr=SR).mean())
    out["flatness"] = float(librosa.feature.spectral_flatness(y=y).mean())
    out["zcr"] = float(librosa.feature.zero_crossing_rate(y).mean())
    out["rms"] = float(librosa.feature.rms(y=y).mean())
    sound = parselmouth.Sound(y.astype(np.float64), sampling_frequency=SR)
    pitch = sound.to_pitch_ac(pitch_floor=60.0, pitch_ceiling=600.0)
    out["f0"] = call(pitch, "Get mean", 0, 0, "Hertz")
    points = call([sound, pitch], "To PointProcess (cc)")
    for kind in ("local", "local, absolute", "rap", "ppq5", "ddp"):
        out[f"jitter {kind}"] = call(points, f"Get jitter ({kind})", *PRAAT_PERIODS)
    for kind in ("local", "local_dB", "apq3", "apq5", "apq11", "dda"):
        out[f"shimmer {kind}"] = call([sound, points], f"Get shimmer ({kind})", *PRAAT_PERIODS, 1.6)
    out["hnr"] = call(sound.to_harmonicity_cc(minimum_pitch=60.0), "Get mean", 0, 0)
    formant = sound.to_formant_burg()
    for i in (1, 2, 3):
        out[f"f{i}"] = call(formant, "Get mean", i, 0, 0, "hertz")
    cepstrogram = call(sound, "To PowerCepstrogram", 60.0, 0.01, 5000.0, 50.0)  # 10 ms, as voxflow
    out["cpps"] = call(cepstrogram, "Get CPPS", "yes", 0.01, 0.001, 60.0, 330.0, 0.05, "parabolic", 0.001, 0.0,
                       "Straight", "Robust")
    return out


def opensmile_extractor() -> Callable[[np.ndarray], object] | None:
    try:
        smile = egemaps_smile()
    except ImportError:
        return None
    return lambda y: smile.process_signal(y, SR)


def stage_breakdown(clips: list[tuple[str, np.ndarray]], repeats: int) -> dict[str, float]:
    """Median CPU ms per clip of each stage of voxflow's extraction, run as extract_features runs them."""
    stages: dict[str, list[float]] = {}
    for _ in range(repeats):
        for _, y in clips:
            clock = time.thread_time()

            def lap(name: str) -> None:
                nonlocal clock
                now = time.thread_time()
                stages.setdefault(name, []).append((now - clock) * 1000)
                clock = now

            track = analyse_pitch(y, sr=SR)
            lap("pitch (own Praat-ac tracker)")
            voice_features(track)
            lap("pulses, peaks, jitter, shimmer, HNR, F0 modulation")
            formant_features(y, sr=SR, times=track.times[track.voiced])
            lap("formants (LPC)")
            spectrogram = power_spectrogram(y, sr=SR)
            lap("spectrogram")
            spectral_features(y, spectrogram, n_mfcc=N_MFCC)
            lap("MFCC + spectral")
            cepstral_features(spectrogram)
            lap("CPPS")
    return {name: float(np.median(values)) for name, values in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin this process to")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage of voxflow's set")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})

    clips = load_clips(args.clips)
    warm_up()
    extractors: dict[str, Callable[[np.ndarray], object]] = {"voxflow": voxflow}
    smile = opensmile_extractor()
    if smile is None:
        print("openSMILE: not installed, skipped (pip install -e '.[bench]')")
    else:
        extractors["opensmile"] = smile
    extractors["naive"] = naive
    for extract in extractors.values():
        extract(clips[0][1])

    times = time_extractors(extractors, clips, args.repeats)
    per_clip = {name: np.median(t, axis=2) * 1000 for name, t in times.items()}  # (2, clips) ms
    ms = {name: float(np.median(t[0])) for name, t in per_clip.items()}
    wall_ms = {name: float(np.median(t[1])) for name, t in per_clip.items()}
    seconds = np.mean([len(y) for _, y in clips]) / SR
    print(f"{len(clips)} clips (mean {seconds:.2f} s at {SR} Hz), {args.repeats} rounds, one core (#{args.core})")
    print(f"{'extractor':<10} {'features':>8} {'CPU ms/clip':>12} {'p90':>7} {'wall ms/clip':>13}")
    counts = {"voxflow": len(FEATURE_NAMES), "opensmile": 88, "naive": len(naive(clips[0][1]))}
    for name, t in per_clip.items():
        print(f"{name:<10} {counts[name]:>8} {ms[name]:>12.1f} {np.percentile(t[0], 90):>7.1f} {wall_ms[name]:>13.1f}")
    if args.breakdown:
        for stage, value in stage_breakdown(clips, args.repeats).items():
            print(f"  voxflow stage {stage:<32} {value:6.1f} CPU ms/clip")
    ratio = ms["opensmile"] / ms["voxflow"] if "opensmile" in ms else None
    if ratio is not None:
        print(f"openSMILE / voxflow: {ratio:.2f}x   naive / voxflow: {ms['naive'] / ms['voxflow']:.2f}x")
    print(
        json.dumps(
            {
                "bench": "features",
                "clips": len(clips),
                "voxflow_ms": round(ms["voxflow"], 2),
                "opensmile_ms": round(ms["opensmile"], 2) if "opensmile" in ms else None,
                "naive_ms": round(ms["naive"], 2),
                "ratio_opensmile_over_voxflow": round(ratio, 3) if ratio is not None else None,
                "clock": "thread_cpu",
                "wall_ms": {name: round(value, 2) for name, value in wall_ms.items()},
                "feature_version": FEATURE_VERSION,
                "repeats": args.repeats,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
