"""Synthetic sustained vowels with known F0, jitter, shimmer and HNR (ground truth for tests and demos)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# /a/ formants with their bandwidths (Hz); F1's is on the wide side, so little ringing carries into the next period.
VOWEL_A_FORMANTS = ((700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0))
# Rosenberg pulse: opening phase and closing phase as shares of the period.
OPEN_SHARE = 0.40
CLOSE_SHARE = 0.16
PEAK = 0.5


def _perturbation(rng: np.random.Generator, n: int, relative_mad: float) -> np.ndarray:
    """Zero-mean factors whose mean absolute successive difference is exactly ``relative_mad``."""
    if n < 2 or relative_mad == 0.0:
        return np.zeros(n)
    e = rng.standard_normal(n)
    e -= e.mean()
    return e * (relative_mad / np.mean(np.abs(np.diff(e))))


def _glottal_flow(phase: np.ndarray) -> np.ndarray:
    """Rosenberg-C glottal flow for a phase in [0, 1) of the period, peak 1.

    The closed phase comes first, so that glottal closure (the excitation that pitch-pulse
    detectors lock onto) falls exactly at the end of each period: the intervals between
    closures are then the synthesised periods themselves, not a blend of two neighbours.
    """
    q = phase - (1.0 - OPEN_SHARE - CLOSE_SHARE)
    rise = 0.5 * (1.0 - np.cos(np.pi * q / OPEN_SHARE))
    fall = np.cos(0.5 * np.pi * (q - OPEN_SHARE) / CLOSE_SHARE)
    return np.where(q < 0.0, 0.0, np.where(q < OPEN_SHARE, rise, fall))


def _formant_filter(x: np.ndarray, sr: int) -> np.ndarray:
    for freq, bandwidth in VOWEL_A_FORMANTS:
        if freq >= sr / 2:
            continue
        r = np.exp(-np.pi * bandwidth / sr)
        a = [1.0, -2.0 * r * np.cos(2.0 * np.pi * freq / sr), r * r]
        x = lfilter([sum(a)], a, x)  # unity gain at DC
    return x


def synth_vowel(
    *,
    f0_hz: float,
    duration_s: float,
    sr: int = 16_000,
    jitter: float = 0.0,
    shimmer: float = 0.0,
    hnr_db: float | None = None,
    vibrato_hz: float = 0.0,
    vibrato_st: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Synthesise a sustained /a/ from a perturbed glottal pulse train.

    Each period gets its own length and amplitude; their relative mean absolute successive
    differences equal ``jitter`` and ``shimmer`` exactly (Praat's "local" definitions), and the
    mean period is ``1 / f0_hz`` (about, with vibrato). The pulse train (Rosenberg-C flow, differentiated for lip
    radiation) goes through three /a/ formant resonators; white noise is then added at
    ``hnr_db`` below the periodic part's power.

    Parameters
    ----------
    f0_hz : float
        Mean fundamental frequency.
    duration_s : float
        Length of the clip.
    sr : int
        Sample rate.
    jitter, shimmer : float
        Relative period and amplitude perturbation (0.01 = 1 %).
    hnr_db : float or None
        Harmonics-to-noise ratio of the added noise; None adds no noise.
    vibrato_hz, vibrato_st : float
        Sinusoidal F0 modulation: its rate and its peak deviation in semitones (0: none).
    seed : int
        Seed of the perturbations and noise.

    Returns
    -------
    np.ndarray, shape (round(duration_s * sr),), float32
        Peak-normalised to 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    n_periods = int(np.ceil(duration_s * f0_hz * 2.0 ** (abs(vibrato_st) / 12.0))) + 2
    vibrato = 2.0 ** (-vibrato_st / 12.0 * np.sin(2.0 * np.pi * vibrato_hz * np.arange(n_periods) / f0_hz))
    periods = (1.0 + _perturbation(rng, n_periods, jitter)) / f0_hz * vibrato
    amplitudes = 1.0 + _perturbation(rng, n_periods, shimmer)
    onsets = np.concatenate(([0.0], np.cumsum(periods)))
    t = np.arange(n + 1) / sr
    index = np.searchsorted(onsets, t, side="right") - 1
    flow = amplitudes[index] * _glottal_flow((t - onsets[index]) / periods[index])
    voiced = _formant_filter(np.diff(flow), sr)
    if hnr_db is not None:
        noise = rng.standard_normal(n)
        voiced = voiced + noise * np.sqrt(np.mean(voiced**2) / 10.0 ** (hnr_db / 10.0))
    peak = np.max(np.abs(voiced), initial=0.0)
    return (voiced * (PEAK / peak if peak > 0 else 0.0)).astype(np.float32)
