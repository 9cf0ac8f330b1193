"""Candidate feature families on VOICED: do F0 modulation, band HNR or RPDE add to the 82 features?

    .venv/bin/python bench/feature_families.py [--seeds 0 1000 2000 3000 4000] [--processes 2] [--variants A,B]
    .venv/bin/python bench/feature_families.py --costs   # the band HNR candidates' CPU time, one core

Every VOICED record is decoded at 16 kHz (:func:`features.audio.decode_audio`); the product's 82 features
(:func:`features.extract.extract_features`) and the candidates below are computed from it, the candidates
from the product's own pitch track, glottal pulses and per-period peaks (:mod:`features.voice`,
:mod:`features.pulses`). Each variant (the 82 features plus some families) goes through the product's
cross-validation (:func:`models.train.cross_validate`, default recipe: stumps, the 8 strongest features
chosen in each training fold): stratified, subject-grouped 5-fold, 5 repeats per seed, the same folds for
every variant. Prints mean ROC AUC per variant and seed, the mean over the fresh seeds (all but seed 0,
on whose folds the recipe was chosen), its gain over the row it is compared with (the 82 features, or
version 4's 89 for the ``v4+`` rows) and on how many fresh seeds it is higher, the CPU ms per clip of each
family, each candidate's own ROC AUC (oriented: ``+`` when higher values lean pathological); then one
JSON object last.

Families (each a pure function of one clip's analysis; parameters are the module constants):

- ``f0mod``: modulation of the cycle-by-cycle F0 contour (semitones) in 2-4, 4-8, 8-15 Hz, its share of
  power in 4-15 Hz, the strongest 2-15 Hz peak and its frequency, its spread above 1 Hz.
- ``ampmod``: the same measures of the per-period peak amplitude contour (dB).
- ``bandhnr``: harmonic-to-noise energy in 0-0.5, 0.5-1.5, 1.5-2.5, 2.5-3.5 kHz, median over up to 100
  voiced pitch frames (its own 40 ms frames and 8192-point FFT, not the product's spectrogram).
- ``rpde``: recurrence period density entropy of the voiced span (Little et al. 2007).
- ``spechnr-*``: band HNR as ``bandhnr``, but read from the product's own spectrogram
  (:mod:`features.spectrogram`: 50 ms Hann frames, 20 Hz bins), over every voiced frame; three
  formulations: harmonic bins within F0/4 of a harmonic (``halfwidth``) or the bin nearest it and its two
  neighbours (``lobe``, the Hann main lobe's core), median or mean over frames.

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

Band HNR from the product's spectrogram, against version 4's 89 features (2026-12-07; criterion fixed
before measuring: adopt as feature version 5 if the fresh-seed mean gains >= +0.010, on at least 3 of the
4 fresh seeds, at <= 5 ms CPU per clip; the three formulations above are all that were tried). Run with
``--variants v4+spechnr-halfwidth-median,v4+spechnr-lobe-median,v4+spechnr-halfwidth-mean``, 13 min wall at
load ~6. AUC on seeds 0 / 1000 / 2000 / 3000 / 4000, fresh mean:

- version 4's 89 features: 0.675 / 0.667 / 0.662 / 0.663 / 0.663, 0.664 (``base+f0mod``)
- + halfwidth-median: 0.680 / 0.679 / 0.668 / 0.676 / 0.665, 0.672 (+0.008, higher on 4 of 4)
- + lobe-median: 0.674 / 0.665 / 0.662 / 0.656 / 0.657, 0.660 (-0.004, higher on 0)
- + halfwidth-mean: 0.678 / 0.672 / 0.667 / 0.669 / 0.664, 0.668 (+0.004, higher on 4)
- + ``bandhnr`` (own FFT, for comparison; ``--variants v4+bandhnr``): 0.679 / 0.676 / 0.669 / 0.675 /
  0.668, 0.672 (+0.008, higher on 4)

CPU (``--costs``, 42 records, one core): halfwidth-median 1.7 ms, lobe-median 1.7, halfwidth-mean 1.5,
``bandhnr`` 21. So the spectrogram's 20 Hz bins lose nothing against the 2 Hz bins (single-band AUCs agree
within 0.01), but over version 4 band HNR adds +0.008 where it added +0.016 over version 3: part of what it
carried, F0 modulation now carries. Below the +0.010 bar: not adopted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from multiprocessing import Pool
from typing import Callable

import numpy as np
from numba import njit

from common import VOICED, time_extractors  # (common puts the repository on the path)
from features.audio import decode_audio
from features.extract import extract_features, warm_up
from features.modulation import F0_MODULATION_NAMES, f0_modulation, modulation, modulation_names
from features.perturbation import MAX_PERIOD_FACTOR, PERIOD_CEILING_S, PERIOD_FLOOR_S
from features.pulses import period_peaks, pulse_times
from features.schema import FEATURE_NAMES
from features.spectrogram import PowerSpectrogram, power_spectrogram
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
LOBE_BINS = 1  # spectrogram band HNR "lobe": the bin nearest a harmonic and this many on each side (Hann main-lobe core)
# RPDE (Little et al. 2007: m 4, tau 35 samples at 25 kHz)
RPDE_M = 4
RPDE_TAU_S = 35 / 25_000
RPDE_EPS = 0.12  # radius of the recurrence ball, on the signal scaled to [-1, 1]
RPDE_TMAX_S = 0.04  # recurrence times counted up to 40 ms
RPDE_MIN_S = 0.1
# spectrogram band HNR formulations (the three tried): harmonic bins, statistic over frames
SPECHNR_FORMS: dict[str, tuple[str, Callable[[np.ndarray], float]]] = {
    "halfwidth-median": ("halfwidth", np.median),
    "lobe-median": ("lobe", np.median),
    "halfwidth-mean": ("halfwidth", np.mean),
}


FAMILIES: dict[str, tuple[str, ...]] = {
    "f0mod": F0_MODULATION_NAMES,
    "ampmod": modulation_names("amp"),
    "bandhnr": tuple(f"band_hnr_{lo:.0f}_{hi:.0f}_db" for lo, hi in HNR_BANDS_HZ),
    "rpde": ("rpde",),
    **{f"spechnr-{form}": tuple(f"spec_hnr_{form}_{lo:.0f}_{hi:.0f}_db" for lo, hi in HNR_BANDS_HZ) for form in SPECHNR_FORMS},
}
V4 = "base+f0mod"  # feature version 4's 89 features (the schema's, in another column order)
# name -> (families added to base, the variant it is compared with)
VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "base": ((), "base"),
    V4: (("f0mod",), "base"),
    "base+ampmod": (("ampmod",), "base"),
    "base+bandhnr": (("bandhnr",), "base"),
    "base+rpde": (("rpde",), "base"),
    "base+f0mod+bandhnr+rpde": (("f0mod", "bandhnr", "rpde"), "base"),
    "base+all-lifted": (("f0mod", "ampmod", "bandhnr", "rpde"), "base"),
    "v4+bandhnr": (("f0mod", "bandhnr"), V4),
    **{f"v4+spechnr-{form}": (("f0mod", f"spechnr-{form}"), V4) for form in SPECHNR_FORMS},
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


def spectrogram_band_hnr(
    spectrogram: PowerSpectrogram, pitch_times: np.ndarray, pitch_f0_hz: np.ndarray, *, harmonic: str, statistic: Callable[[np.ndarray], float],
) -> np.ndarray:
    """Band HNR from the product's spectrogram (families ``spechnr-*``): as :func:`band_hnr`, but no FFT of its own.

    Parameters
    ----------
    spectrogram : PowerSpectrogram
        The clip's shared spectrogram (:func:`features.spectrogram.power_spectrogram`: 50 ms Hann, 20 Hz bins).
    pitch_times, pitch_f0_hz : np.ndarray, shape (t,)
        The product's pitch track: each spectrogram frame takes the F0 of the nearest pitch frame within half a
        pitch step (unvoiced where that is 0 or there is none).
    harmonic : {"halfwidth", "lobe"}
        Harmonic bins: within ``HARMONIC_HALF_WIDTH`` F0 of a harmonic, or the bin nearest it and ``LOBE_BINS``
        on each side; from 0.75 F0 up.
    statistic : callable
        Over the voiced frames above -120 dBFS (``np.median``, ``np.mean``).

    Returns
    -------
    np.ndarray, shape (len(HNR_BANDS_HZ),)
        Per band, ``statistic`` of the frames' 10 log10(harmonic / other power in the band); NaN with fewer
        than ``HNR_MIN_FRAMES`` such frames.
    """
    out = np.full(len(HNR_BANDS_HZ), NAN)
    frame_times = np.arange(len(spectrogram.mean_square)) * spectrogram.hop / spectrogram.sr
    if len(pitch_times) == 0:
        return out
    step = pitch_times[1] - pitch_times[0] if len(pitch_times) > 1 else np.inf
    nearest = np.clip(np.rint((frame_times - pitch_times[0]) / step), 0, len(pitch_times) - 1).astype(int) if len(pitch_times) > 1 else np.zeros(len(frame_times), dtype=int)
    f0 = np.where(np.abs(frame_times - pitch_times[nearest]) <= step / 2, pitch_f0_hz[nearest], 0.0)
    frames = np.flatnonzero((f0 > 0) & spectrogram.active)
    if len(frames) < HNR_MIN_FRAMES:
        return out
    freqs = spectrogram.frequencies
    top = int(np.searchsorted(freqs, HNR_BANDS_HZ[-1][1]))
    freqs = freqs[:top]
    power = spectrogram.power[frames, :top].astype(np.float64) + 1e-20
    f0 = f0[frames, None]
    order = np.maximum(np.rint(freqs / f0), 1.0)  # nearest harmonic number
    if harmonic == "halfwidth":
        near = np.abs(freqs / f0 - order) <= HARMONIC_HALF_WIDTH
    else:
        bin_hz = spectrogram.sr / spectrogram.n_fft
        near = np.abs(np.arange(top) - np.rint(order * f0 / bin_hz)) <= LOBE_BINS
    above = freqs >= 0.75 * f0
    for b, (lo, hi) in enumerate(HNR_BANDS_HZ):
        band = above & (freqs >= lo) & (freqs < hi)
        harmonic_bins, noise_bins = band & near, band & ~near
        ok = harmonic_bins.any(axis=1) & noise_bins.any(axis=1)
        if ok.sum() >= HNR_MIN_FRAMES:
            db = 10 * np.log10((power * harmonic_bins).sum(axis=1)[ok] / (power * noise_bins).sum(axis=1)[ok])
            out[b] = float(statistic(db))
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
    spectrogram = power_spectrogram(y, sr=RATE)
    costs["pitch, pulses, peaks, spectrogram"] = time.process_time() - started  # inside extract_features already: shared, not extra
    values = {
        f"spechnr-{form}": _timed(costs, f"spechnr-{form}", lambda: dict(zip(
            FAMILIES[f"spechnr-{form}"], spectrogram_band_hnr(spectrogram, track.times, track.f0_hz, harmonic=harmonic, statistic=statistic))))
        for form, (harmonic, statistic) in SPECHNR_FORMS.items()
    } | {
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


def costs(every: int, repeats: int) -> None:
    """Print the band HNR candidates' CPU ms per clip as ``bench/features.py`` times extractors: one core,
    interleaved rounds, median over clips of each clip's median; on every ``every``-th VOICED record,
    its pitch track and spectrogram computed beforehand (they come with the product's features)."""
    os.sched_setaffinity(0, {0})
    _warm_up()
    clips = []
    for row in read_voiced_labels(VOICED, max_file_bytes=10**9).rows[::every]:
        y = decode_audio(row.path, target_rate=RATE).samples.astype(np.float64)
        track = analyse_pitch(y, sr=RATE)
        clips.append((row.path, (y, track, power_spectrogram(y, sr=RATE))))
    extractors = {
        f"spechnr-{form}": lambda clip, harmonic=harmonic, statistic=statistic: spectrogram_band_hnr(
            clip[2], clip[1].times, clip[1].f0_hz, harmonic=harmonic, statistic=statistic)
        for form, (harmonic, statistic) in SPECHNR_FORMS.items()
    } | {"bandhnr": lambda clip: band_hnr(clip[0], RATE, clip[1].times, clip[1].f0_hz)}
    times = time_extractors(extractors, clips, repeats)
    print(f"{len(clips)} VOICED clips, {repeats} rounds, one core, thread CPU ms per clip (median over clips of each clip's median; p90):")
    for name, t in times.items():
        per_clip = np.median(t[0], axis=1) * 1000
        print(f"  {name:<26} {np.median(per_clip):5.2f}  p90 {np.percentile(per_clip, 90):5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1000, 2000, 3000, 4000])
    parser.add_argument("--processes", type=int, default=2, help="processes for extraction and for the CV runs")
    parser.add_argument("--variants", help="comma-separated variants to cross-validate (their reference rows come too; default: all)")
    parser.add_argument("--costs", action="store_true", help="only time the band HNR candidates on one core (bench/features.py's way)")
    args = parser.parse_args()
    if args.costs:
        return costs(every=5, repeats=5)
    chosen = set(args.variants.split(",") if args.variants else VARIANTS)
    while not chosen >= (references := {VARIANTS[name][1] for name in chosen}):
        chosen |= references
    rows = [name for name in VARIANTS if name in chosen]
    started = time.perf_counter()
    recordings = read_voiced_labels(VOICED, max_file_bytes=10**9).rows
    with Pool(args.processes, initializer=_warm_up) as pool:
        clips = pool.map(_clip, [row.path for row in recordings], chunksize=4)
    extracted = time.perf_counter() - started
    labels = np.array([row.label for row in recordings])
    groups = np.array([str(row.subject_id or row.sha256) for row in recordings])
    base = np.stack([c[0] for c in clips])
    family = {f: np.array([c[1][f] for c in clips], dtype=float) for f in FAMILIES}
    matrices = {name: np.hstack([base, *(family[f] for f in VARIANTS[name][0])]) for name in rows}
    with Pool(args.processes) as pool:
        runs = pool.map(_cv, [(name, matrices[name], labels, groups, seed) for name in rows for seed in args.seeds], chunksize=1)
    auc = {(name, seed): value for name, seed, value in runs}
    ms = {step: 1000 * float(np.mean([c[2][step] for c in clips])) for step in clips[0][2]}

    fresh = [seed for seed in args.seeds if seed != 0] or args.seeds
    print(f"VOICED {len(labels)} recordings ({int(labels.sum())} pathological); mean ROC AUC of 25 folds per seed, "
          f"same folds for every variant; Δfresh and fresh up (fresh seeds where it is higher) against the row named by 'vs'; "
          f"ms/clip: CPU of the families it adds; fresh = seeds {' '.join(map(str, fresh))}")
    print(f"{'variant':<31} " + " ".join(f"{seed:>6}" for seed in args.seeds) + f"   fresh  Δfresh  fresh up  ms/clip  vs")
    result: dict[str, dict[str, float]] = {}
    for name in rows:
        fams, reference = VARIANTS[name]
        mean = float(np.mean([auc[name, s] for s in fresh]))
        delta = mean - float(np.mean([auc[reference, s] for s in fresh]))
        up = sum(auc[name, s] > auc[reference, s] for s in fresh)
        added = [f for f in fams if f not in VARIANTS[reference][0]]
        cost = sum(ms[f] for f in added) if name != reference else ms["82 features"]
        result[name] = {"fresh": round(mean, 4), "delta": round(delta, 4), "fresh_up": up, "vs": reference,
                        "all": round(float(np.mean([auc[name, s] for s in args.seeds])), 4), **{str(s): round(auc[name, s], 4) for s in args.seeds}}
        print(f"{name:<31} " + " ".join(f"{auc[name, s]:6.3f}" for s in args.seeds)
              + f"  {mean:6.3f}  {delta:+6.3f}  {up if name != reference else '':>8}  {cost:7.1f}  {reference if name != reference else ''}", flush=True)
    print("CPU ms per clip (mean): " + ", ".join(f"{step} {value:.1f}" for step, value in ms.items()))
    print("each candidate's own ROC AUC over the 208 recordings (+: higher values lean pathological):")
    single = {}
    for f in FAMILIES:
        aucs = column_aucs(family[f], labels)
        single.update({n: round(float(a), 4) for n, a in zip(FAMILIES[f], aucs)})
        print(f"  {f:<22} " + ", ".join(f"{n} {max(a, 1 - a):.3f}{'+' if a >= 0.5 else '-'}" for n, a in zip(FAMILIES[f], aucs)))
    print(f"extraction {extracted:.0f} s, total {time.perf_counter() - started:.0f} s wall")
    print(json.dumps({"bench": "feature_families", "seeds": args.seeds, "fresh_seeds": fresh, "auc": result,
                      "cpu_ms_per_clip": {k: round(v, 1) for k, v in ms.items()}, "single_feature_auc": single}))


if __name__ == "__main__":
    main()
