"""Formants F1-F3 (centre frequency and bandwidth) of the voiced frames, by linear prediction.

Praat's ``To Formant (burg)`` costs ~40 ms per 5 s clip; this is the autocorrelation method,
vectorised over frames: the clip is resampled to 8 kHz (F1-F3 of adult voices lie below 3.5 kHz,
and four to five resonances fit below 4 kHz, so order 10 models them with a pair to spare for the
source's tilt), pre-emphasised above 50 Hz, cut into 25 ms Hamming frames centred on the voiced
pitch frames, and each frame's predictor polynomial is solved by Levinson-Durbin, its roots found
by Aberth-Ehrlich iteration. A root is a formant when it lies above 90 Hz (below,
it models the glottal source) with a bandwidth under 700 Hz (wider ones shape the spectral slope,
not a resonance); F1-F3 are a frame's three lowest formants.

Limits, measured on the synthetic /a/ (700, 1220, 2600 Hz): within 5.5 % for F0 100-150 Hz (HNR
20-30 dB) and 220 Hz at 20 dB; with F0 above ~200 Hz and little noise, the predictor locks onto
harmonics and F2/F3 read 20-50 % low, the usual failure of LPC on high voices. Bandwidths are
rough (see the tests). Against Praat's ``To Formant (burg)`` (5 formants below 5.5 kHz) on 21
VOICED records, F1 correlates 0.85, F2 0.54 and F3 0.64: the two disagree most on F2/F3.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import soxr
from numba import njit

ANALYSIS_RATE = 8_000
LPC_ORDER = 10
FRAME_S = 0.025
PRE_EMPHASIS_HZ = 50.0
MIN_FORMANT_HZ = 90.0
MAX_BANDWIDTH_HZ = 700.0
N_FORMANTS = 3
MIN_FRAMES = 5  # the same floor as the voice features: fewer voiced frames is not a voice
# Frames spread evenly over the voiced ones: root finding costs ~14 us a frame; on 21 VOICED records
# the means over 100 frames are within 3 % (centre) and 7.5 % (bandwidth) of those over all ~380.
MAX_FRAMES = 100
ROOT_START_RADIUS = 0.9
ROOT_START_ANGLE = 0.4  # off the real axis, so that conjugate pairs can separate
ROOT_MAX_STEPS = 100
ROOT_TOLERANCE = 1e-12
FORMANT_NAMES = tuple(
    f"f{i}_{what}" for i in range(1, N_FORMANTS + 1) for what in ("mean_hz", "bandwidth_hz")
)


def _lpc(frames: np.ndarray, order: int) -> np.ndarray:
    """Predictor polynomials ``[1, a1 .. ap]`` of windowed frames, shape (f, order + 1), by
    Levinson-Durbin on each frame's autocorrelation (frames of zeros give ``[1, 0 .. 0]``)."""
    n = frames.shape[1]
    r = np.stack([np.einsum("fi,fi->f", frames[:, : n - lag], frames[:, lag:]) for lag in range(order + 1)], axis=1)
    a = np.zeros((len(frames), order + 1))
    a[:, 0] = 1.0
    error = r[:, 0].copy()
    for i in range(1, order + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            k = -np.einsum("fj,fj->f", a[:, :i], r[:, i:0:-1]) / error
        k = np.where(error > 0, k, 0.0)
        a[:, 1 : i + 1] += k[:, None] * a[:, i - 1 :: -1][:, :i]
        error *= 1.0 - k * k
    return a


@njit(cache=True, error_model="numpy")
def _roots(a: np.ndarray) -> np.ndarray:
    """Roots of each monic polynomial ``a[f] = [1, a1 .. ap]``, shape (f, p), by Aberth-Ehrlich iteration
    (simultaneous Newton steps, each deflated by the other roots) from points on a circle of radius 0.9.
    On 52 VOICED records the formant features agree with those from the companion matrix's eigenvalues
    (``np.linalg.eigvals``) to 1e-14, at 70 % of the cost."""
    n_frames, p = a.shape[0], a.shape[1] - 1
    roots = np.empty((n_frames, p), dtype=np.complex128)
    z = np.empty(p, dtype=np.complex128)
    for f in range(n_frames):
        for i in range(p):
            z[i] = ROOT_START_RADIUS * cmath.exp(1j * (2.0 * math.pi * i / p + ROOT_START_ANGLE))
        for _ in range(ROOT_MAX_STEPS):
            largest = 0.0
            for i in range(p):
                value, slope = a[f, 0] + 0j, 0j
                for k in range(1, p + 1):
                    slope = slope * z[i] + value
                    value = value * z[i] + a[f, k]
                ratio = value / slope
                repulsion = 0j
                for j in range(p):
                    if j != i:
                        repulsion += 1.0 / (z[i] - z[j])
                step = ratio / (1.0 - ratio * repulsion)
                z[i] -= step
                largest = max(largest, abs(step))
            if largest < ROOT_TOLERANCE:
                break
        roots[f] = z
    return roots


def formant_features(y: np.ndarray, *, sr: int, times: np.ndarray) -> dict[str, float]:
    """Mean centre frequency and bandwidth of F1, F2 and F3 over (at most 100 of) the given frames.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples.
    sr : int
        Sample rate of ``y``.
    times : np.ndarray, shape (t,)
        Centres of the frames to analyse, in seconds (the voiced pitch frames).

    Returns
    -------
    dict of str to float
        ``FORMANT_NAMES`` in Hz; NaN when fewer than five frames are given, or when fewer than
        five frames have that many formants.
    """
    out = dict.fromkeys(FORMANT_NAMES, float("nan"))
    if len(times) < MIN_FRAMES:
        return out
    times = np.asarray(times)[np.unique(np.linspace(0, len(times) - 1, min(len(times), MAX_FRAMES)).round().astype(int))]
    x = soxr.resample(np.asarray(y, dtype=np.float64), sr, ANALYSIS_RATE) if sr != ANALYSIS_RATE else y
    x = np.append(x[0], x[1:] - np.exp(-2.0 * np.pi * PRE_EMPHASIS_HZ / ANALYSIS_RATE) * x[:-1])
    length = int(round(FRAME_S * ANALYSIS_RATE))
    padded = np.pad(x, length // 2)
    starts = np.clip(np.round(times * ANALYSIS_RATE).astype(int), 0, len(x) - 1)
    frames = padded[starts[:, None] + np.arange(length)] * np.hamming(length)
    a = _lpc(frames, LPC_ORDER)

    roots = _roots(a)  # (f, order)
    with np.errstate(divide="ignore"):
        freq = np.angle(roots) * ANALYSIS_RATE / (2.0 * np.pi)
        bandwidth = -np.log(np.abs(roots)) * ANALYSIS_RATE / np.pi
    formant = (freq > MIN_FORMANT_HZ) & (bandwidth < MAX_BANDWIDTH_HZ)
    freq = np.where(formant, freq, np.inf)
    order = np.argsort(freq, axis=1)[:, :N_FORMANTS]
    freq = np.take_along_axis(freq, order, axis=1)
    bandwidth = np.take_along_axis(bandwidth, order, axis=1)
    for i in range(N_FORMANTS):
        found = np.isfinite(freq[:, i])
        if found.sum() >= MIN_FRAMES:
            out[f"f{i + 1}_mean_hz"] = float(freq[found, i].mean())
            out[f"f{i + 1}_bandwidth_hz"] = float(bandwidth[found, i].mean())
    return out
