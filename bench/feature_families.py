"""Candidate feature families on VOICED: do F0 modulation, band HNR or RPDE add to the 82 features?

    .venv/bin/python bench/feature_families.py [--seeds 0 1000 2000 3000 4000] [--processes 2]

Every VOICED record is decoded at 16 kHz (:func:`features.audio.decode_audio`); the product's 82 features
(:func:`features.extract.extract_features`) and the candidates below are computed from it, the candidates
from the product's own pitch track, glottal pulses and per-period peaks (:mod:`features.voice`,
:mod:`features.pulses`). Each variant (the 82 features plus some families) goes through the product's
cross-validation (:func:`models.train.cross_validate`, default recipe: stumps, the 8 strongest features
chosen in each training fold): stratified, subject-grouped 5-fold, 5 repeats per seed, the same folds for
every variant. Prints mean ROC AUC per variant and seed, the mean over the fresh seeds (all but seed 0,
on whose folds the recipe was chosen) and its gain over the 82 features, the CPU ms per clip of each
family, each candidate's own ROC AUC (oriented: ``+`` when higher values lean pathological); then one
JSON object last.

Families (each a pure function of one clip's analysis; parameters are the module constants):

- ``f0mod``: modulation of the cycle-by-cycle F0 contour (semitones) in 2-4, 4-8, 8-15 Hz, its share of
  power in 4-15 Hz, the strongest 2-15 Hz peak and its frequency, its spread above 1 Hz.
- ``ampmod``: the same measures of the per-period peak amplitude contour (dB).
- ``bandhnr``: harmonic-to-noise energy in 0-0.5, 0.5-1.5, 1.5-2.5, 2.5-3.5 kHz, median over up to 100
  voiced pitch frames (its own 40 ms frames and 8192-point FFT, not the product's spectrogram).
- ``rpde``: recurrence period density entropy of the voiced span (Little et al. 2007).

Also measured on 2026-12-06 (hand-run, scripts not kept), no gain on fresh seeds, so left out here:
GNE and VFER (Michaelis 1997, Tsanas 2011; 4 s per clip), H1-H2, H1-H4, H1-A1, H1-A3 and long-term
spectrum tilt, DFA, PPE, and jitter, shimmer and HNR statistics over 100 ms segments.

Run on 2026-12-06 (night), 2 processes on a shared 2-core machine (load ~5): 6 min 50 s wall, 28 s of it
extraction, the rest the 35 CV runs. Its AUCs equal those of the hand-run study of that evening (whose
functions these are) to the fourth decimal. Fresh-seed mean AUC: 82 features 0.644; + f0mod 0.664
(+0.019, higher on every seed); + bandhnr 0.660 (+0.016); + rpde 0.652 (+0.007); + ampmod 0.651
(+0.007); + f0mod, bandhnr and rpde 0.671 (+0.027, a combination picked after seeing the rows above, so
flattered); all four 0.666 (+0.021). CPU ms per clip in that run: the 82 features 20, f0mod 2.5, ampmod
1.6, bandhnr 19, rpde 68 (pitch track and pulses come with the 82 features). Far from the 0.80 goal.

F0 modulation was adopted as feature version 4 (:mod:`features.modulation`, whose functions these are
now): ``base`` stays version 3's 82 features (the schema's less the F0-modulation columns), so the rows
above still compare the same sets; the "82 features" CPU time now includes the 7 F0-modulation features.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import Pool
from typing import Callable

import numpy as np
from numba import njit

from common import VOICED  # (common puts the repository on the path)
from features.audio import decode_audio
from features.extract import extract_features, warm_up
from features.modulation import F0_MODULATION_NAMES, f0_modulation, modulation, modulation_names
from features.perturbation import MAX_PERIOD_FACTOR, PERIOD_CEILING_S, PERIOD_FLOOR_S
from features.pulses import period_peaks, pulse_times
from features.schema import FEATURE_NAMES
from features.synth import synth_vowel
from features.voice import F0_MAX_HZ, F0_MIN_HZ, analyse_pitch
from models.train import column_aucs, cross_validate
from tasks.labels import read_voiced_labels

RATE = 16_000
NAN = float("nan")
BASE_NAMES = tuple(name for name in FEATURE_NAMES if name not in F0_MODULATION_NAMES)  # feature version 3's 82

# band HNR
HNR_FRAME_S = 0.04
HNR_NFFT = 8192
HNR_MAX_FRAMES = 100
HNR_MIN_FRAMES = 5
HNR_BANDS_HZ = ((0.0, 500.0), (500.0, 1500.0), (1500.0, 2500.0), (2500.0, 3500.0))
HARMONIC_HALF_WIDTH = 0.25  # energy within +-F0/4 of a harmonic counts as harmonic
# RPDE (Little et al. 2007: m 4, tau 35 samples at 25 kHz)
RPDE_M = 4
RPDE_TAU_S = 35 / 25_000
RPDE_EPS = 0.12  # radius of the recurrence ball, on the signal scaled to [-1, 1]
RPDE_TMAX_S = 0.04  # recurrence times counted up to 40 ms
RPDE_MIN_S = 0.1


FAMILIES: dict[str, tuple[str, ...]] = {
    "f0mod": F0_MODULATION_NAMES,
    "ampmod": modulation_names("amp"),
    "bandhnr": tuple(f"band_hnr_{lo:.0f}_{hi:.0f}_db" for lo, hi in HNR_BANDS_HZ),
    "rpde": ("rpde",),
}
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": (),
    "base+f0mod": ("f0mod",),
    "base+ampmod": ("ampmod",),
    "base+bandhnr": ("bandhnr",),
    "base+rpde": ("rpde",),
    "base+f0mod+bandhnr+rpde": ("f0mod", "bandhnr", "rpde"),
    "base+all-lifted": ("f0mod", "ampmod", "bandhnr", "rpde"),
}


def amplitude_modulation(peak_times: np.ndarray, peak_amplitudes: np.ndarray) -> dict[str, float]:
    """:func:`modulation` of the per-period peak amplitudes (:func:`features.pulses.period_peaks`) in dB
    (family ``ampmod``)."""
    decibels = 20 * np.log10(np.maximum(peak_amplitudes, 1e-9)) if len(peak_amplitudes) else peak_amplitudes
    return modulation("amp", peak_times, decibels)


def band_hnr(y: np.ndarray, sr: int, frame_times: np.ndarray, frame_f0_hz: np.ndarray) -> dict[str, float]:
    """Harmonic-to-noise energy ratio per frequency band (family ``bandhnr``).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The clip.
    sr : int
        Its sample rate.
    frame_times, frame_f0_hz : np.ndarray, shape (t,)
        The product's pitch track (:func:`features.voice.analyse_pitch`): frame centres (s), F0 (0 unvoiced).

    Returns
    -------
    dict of str to float
        ``FAMILIES["bandhnr"]``: per band of ``HNR_BANDS_HZ``, the median over up to ``HNR_MAX_FRAMES``
        voiced frames (evenly spread; ``HNR_FRAME_S`` Hann, ``HNR_NFFT``-point FFT) of 10 log10 of the
        power within ``HARMONIC_HALF_WIDTH`` F0 of a harmonic over the rest of the band (from 0.75 F0 up);
        NaN with fewer than ``HNR_MIN_FRAMES`` frames.
    """
    names = FAMILIES["bandhnr"]
    out = dict.fromkeys(names, NAN)
    voiced = np.flatnonzero(frame_f0_hz > 0)
    if len(voiced) < HNR_MIN_FRAMES:
        return out
    voiced = voiced[np.unique(np.linspace(0, len(voiced) - 1, min(len(voiced), HNR_MAX_FRAMES)).round().astype(int))]
    y = np.asarray(y, dtype=np.float64)
    width = int(round(HNR_FRAME_S * sr))
    window = np.hanning(width)
    freqs = np.fft.rfftfreq(HNR_NFFT, 1 / sr)
    rows = []
    for i in voiced:
        centre = int(round(frame_times[i] * sr))
        if centre - width // 2 < 0 or centre + width // 2 > len(y):
            continue
        power = np.abs(np.fft.rfft(y[centre - width // 2 : centre - width // 2 + width] * window, HNR_NFFT)) ** 2 + 1e-20
        f0 = frame_f0_hz[i]
        near = (np.abs(((freqs / f0 + 0.5) % 1.0) - 0.5) <= HARMONIC_HALF_WIDTH) & (freqs >= 0.75 * f0)
        row = []
        for lo, hi in HNR_BANDS_HZ:
            band = (freqs >= max(lo, 0.75 * f0)) & (freqs < hi)
            harmonic, noise = power[band & near].sum(), power[band & ~near].sum()
            row.append(10 * np.log10(harmonic / noise) if noise > 0 and harmonic > 0 else NAN)
        rows.append(row)
    if len(rows) < HNR_MIN_FRAMES:
        return out
    for name, values in zip(names, np.array(rows, dtype=float).T):
        values = values[np.isfinite(values)]
        if len(values) >= HNR_MIN_FRAMES:
            out[name] = float(np.median(values))
    return out


@njit(cache=True)
def _recurrence_histogram(x: np.ndarray, m: int, tau: int, eps: float, tmax: int) -> np.ndarray:
    """Counts of first-return times 1..tmax (samples) into each embedded point's eps-ball, after leaving it."""
    n = len(x) - (m - 1) * tau
    hist = np.zeros(tmax + 1)
    eps2 = eps * eps
    for i in range(n):
        j = i + 1
        while j < n:  # leave the ball
            d = 0.0
            for k in range(m):
                diff = x[i + k * tau] - x[j + k * tau]
                d += diff * diff
            if d >= eps2:
                break
            j += 1
        while j < n and j - i <= tmax:  # first return into it
            d = 0.0
            for k in range(m):
                diff = x[i + k * tau] - x[j + k * tau]
                d += diff * diff
            if d < eps2:
                hist[j - i] += 1
                break
            j += 1
    return hist


def rpde(y: np.ndarray, sr: int, pulses: np.ndarray) -> dict[str, float]:
    """Recurrence period density entropy of the voiced span (family ``rpde``; Little et al. 2007).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The clip.
    sr : int
        Its sample rate.
    pulses : np.ndarray, shape (p,)
        Its glottal pulse times (s): only the samples from the first to the last pulse are used (all of
        them with fewer than 3 pulses).

    Returns
    -------
    dict of str to float
        ``rpde``: entropy in [0, 1] of the recurrence times (``RPDE_M``-dimensional delay embedding,
        ``RPDE_TAU_S`` delay, ball ``RPDE_EPS`` on the span scaled to [-1, 1], times up to
        ``RPDE_TMAX_S``), normalised by log(Tmax); NaN for a span under ``RPDE_MIN_S`` or without returns.
    """
    x = np.asarray(y[int(pulses[0] * sr) : int(math.ceil(pulses[-1] * sr)) + 1] if len(pulses) >= 3 else y, dtype=np.float64)
    if len(x) < sr * RPDE_MIN_S or np.ptp(x) == 0:
        return {"rpde": NAN}
    x = 2.0 * (x - x.min()) / np.ptp(x) - 1.0
    tmax = int(round(RPDE_TMAX_S * sr))
    hist = _recurrence_histogram(x, RPDE_M, max(1, int(round(RPDE_TAU_S * sr))), RPDE_EPS, tmax)[1:]
    if hist.sum() == 0:
        return {"rpde": NAN}
    p = hist[hist > 0] / hist.sum()
    return {"rpde": float(-(p * np.log(p)).sum() / np.log(tmax))}


def _timed(costs: dict[str, float], name: str, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    started = time.process_time()
    values = compute()
    costs[name] = time.process_time() - started
    return values


def _clip(path: str) -> tuple[np.ndarray, dict[str, list[float]], dict[str, float]]:
    """One record: its 82 features, each family's values and each step's CPU seconds."""
    audio = decode_audio(path, target_rate=RATE)
    costs: dict[str, float] = {}
    base = _timed(costs, "82 features", lambda: extract_features(audio))
    started = time.process_time()
    y = audio.samples.astype(np.float64)
    track = analyse_pitch(y, sr=RATE)
    pulses = pulse_times(y, track.pitch, sr=RATE) if track.pitch is not None else np.empty(0)
    peak_times, peak_amplitudes = period_peaks(
        y, pulses, sr=RATE, period_floor_s=PERIOD_FLOOR_S, period_ceiling_s=PERIOD_CEILING_S, max_period_factor=MAX_PERIOD_FACTOR,
    )
    costs["pitch, pulses, peaks"] = time.process_time() - started  # inside extract_features already: shared, not extra
    values = {
        "f0mod": _timed(costs, "f0mod", lambda: f0_modulation(pulses, f0_min_hz=F0_MIN_HZ, f0_max_hz=F0_MAX_HZ)),
        "ampmod": _timed(costs, "ampmod", lambda: amplitude_modulation(peak_times, peak_amplitudes)),
        "bandhnr": _timed(costs, "bandhnr", lambda: band_hnr(y, RATE, track.times, track.f0_hz)),
        "rpde": _timed(costs, "rpde", lambda: rpde(y, RATE, pulses)),
    }
    return np.array([base[name] for name in BASE_NAMES]), {f: [values[f][n] for n in FAMILIES[f]] for f in FAMILIES}, costs


def _warm_up() -> None:
    """Numba compilation and caches, paid once per process rather than in the first clip's timings."""
    warm_up()
    rpde(synth_vowel(f0_hz=150.0, duration_s=0.5, sr=RATE, jitter=0.01, shimmer=0.03, hnr_db=20.0), RATE, np.empty(0))


def _cv(job: tuple[str, np.ndarray, np.ndarray, np.ndarray, int]) -> tuple[str, int, float]:
    name, features, labels, groups, seed = job
    return name, seed, cross_validate(features, labels, groups, n_repeats=5, seed=seed).auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1000, 2000, 3000, 4000])
    parser.add_argument("--processes", type=int, default=2, help="processes for extraction and for the CV runs")
    args = parser.parse_args()
    started = time.perf_counter()
    recordings = read_voiced_labels(VOICED, max_file_bytes=10**9).rows
    with Pool(args.processes, initializer=_warm_up) as pool:
        clips = pool.map(_clip, [row.path for row in recordings], chunksize=4)
    extracted = time.perf_counter() - started
    labels = np.array([row.label for row in recordings])
    groups = np.array([str(row.subject_id or row.sha256) for row in recordings])
    base = np.stack([c[0] for c in clips])
    family = {f: np.array([c[1][f] for c in clips], dtype=float) for f in FAMILIES}
    matrices = {name: np.hstack([base, *(family[f] for f in fams)]) for name, fams in VARIANTS.items()}
    with Pool(args.processes) as pool:
        runs = pool.map(_cv, [(name, matrices[name], labels, groups, seed) for name in VARIANTS for seed in args.seeds], chunksize=1)
    auc = {(name, seed): value for name, seed, value in runs}
    ms = {step: 1000 * float(np.mean([c[2][step] for c in clips])) for step in clips[0][2]}

    fresh = [seed for seed in args.seeds if seed != 0] or args.seeds
    print(f"VOICED {len(labels)} recordings ({int(labels.sum())} pathological); mean ROC AUC of 25 folds per seed, "
          f"same folds for every variant; seeds up: how many seeds beat base; fresh = seeds {' '.join(map(str, fresh))}")
    print(f"{'variant':<25} " + " ".join(f"{seed:>6}" for seed in args.seeds) + "   fresh  Δfresh  seeds up  ms/clip")
    result: dict[str, dict[str, float]] = {}
    for name, fams in VARIANTS.items():
        mean = float(np.mean([auc[name, s] for s in fresh]))
        delta = mean - float(np.mean([auc["base", s] for s in fresh]))
        up = sum(auc[name, s] > auc["base", s] for s in args.seeds)
        cost = sum(ms[f] for f in fams)
        result[name] = {"fresh": round(mean, 4), "delta": round(delta, 4), "all": round(float(np.mean([auc[name, s] for s in args.seeds])), 4),
                        **{str(s): round(auc[name, s], 4) for s in args.seeds}}
        print(f"{name:<25} " + " ".join(f"{auc[name, s]:6.3f}" for s in args.seeds)
              + f"  {mean:6.3f}  {delta:+6.3f}  {up if fams else '':>8}  {cost if fams else ms['82 features']:7.1f}", flush=True)
    print("CPU ms per clip (mean): " + ", ".join(f"{step} {value:.1f}" for step, value in ms.items()))
    print("each candidate's own ROC AUC over the 208 recordings (+: higher values lean pathological):")
    single = {}
    for f in FAMILIES:
        aucs = column_aucs(family[f], labels)
        single.update({n: round(float(a), 4) for n, a in zip(FAMILIES[f], aucs)})
        print(f"  {f:<8} " + ", ".join(f"{n} {max(a, 1 - a):.3f}{'+' if a >= 0.5 else '-'}" for n, a in zip(FAMILIES[f], aucs)))
    print(f"extraction {extracted:.0f} s, total {time.perf_counter() - started:.0f} s wall")
    print(json.dumps({"bench": "feature_families", "seeds": args.seeds, "fresh_seeds": fresh, "auc": result,
                      "cpu_ms_per_clip": {k: round(v, 1) for k, v in ms.items()}, "single_feature_auc": single}))


if __name__ == "__main__":
    main()
