"""Spectral and energy features from the shared spectrogram: MFCC (and their deltas), spectral shape,
slope, alpha ratio, Hammarberg index, loudness, level and zero-crossing rate.

Frames of digital silence (below -120 dBFS) carry no spectral shape; they are left out of every
statistic but the level ones, so zero padding does not drag centroids towards 0 Hz. A clip with no
other frame has NaN shape features. The balance measures follow eGeMAPS (Eyben et al. 2016), per
frame on the power spectrum and then averaged: alpha ratio, energy 1-5 kHz over 50 Hz-1 kHz;
Hammarberg index, strongest bin 0-2 kHz over strongest bin 2-5 kHz; slope, the least-squares line
through the dB spectrum from 50 Hz to 5 kHz. Loudness is eGeMAPS' too: the sum over mel bands of
band power to the 0.3 (Stevens' power law), in arbitrary units that scale with the input level.
"""

from __future__ import annotations

from functools import lru_cache

import math

import librosa
import numpy as np
import scipy.fft
from numba import njit

from features.spectrogram import LEVEL_FLOOR_DBFS, PowerSpectrogram

N_MELS = 40
DELTA_WIDTH = 9  # frames (90 ms) in librosa's Savitzky-Golay delta
ROLLOFF_SHARE = 0.85
LOUDNESS_EXPONENT = 0.3
POWER_FLOOR = 1e-10  # librosa's amin for spectral flatness; also keeps the dB spectrum finite
LOW_BAND_HZ = (50.0, 1000.0)
HIGH_BAND_HZ = (1000.0, 5000.0)
HAMMARBERG_SPLIT_HZ = 2000.0
SLOPE_BAND_HZ = (50.0, 5000.0)
TINY = float(np.finfo(np.float32).tiny)  # keeps the centroid of an all-zero frame finite

SHAPE_NAMES = (
    "spectral_centroid_mean_hz",
    "spectral_centroid_std_hz",
    "spectral_bandwidth_mean_hz",
    "spectral_rolloff_mean_hz",
    "spectral_flatness_mean",
    "spectral_slope_db_per_khz",
    "alpha_ratio_db",
    "hammarberg_index_db",
    "loudness_mean",
    "loudness_std",
    "zcr_mean",
)
LEVEL_NAMES = ("rms_mean_dbfs", "rms_std_db")


def mfcc_names(n_mfcc: int) -> tuple[str, ...]:
    """``mfcc1_mean`` .. ``mfccN_mean``, ``mfcc1_std`` .. ``mfccN_std``, ``mfcc1_delta_std`` .. ``mfccN_delta_std``."""
    return tuple(f"mfcc{i}_{stat}" for stat in ("mean", "std", "delta_std") for i in range(1, n_mfcc + 1))


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS).astype(np.float32)


def _band(frequencies: np.ndarray, low: float, high: float) -> np.ndarray:
    return (frequencies >= low) & (frequencies < high)


@njit(cache=True, error_model="numpy")
def _shape(power: np.ndarray, log_power: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Per frame, in one pass over its bins (float64 sums): spectral centroid, bandwidth and 85 %
    rolloff of the magnitude spectrum, flatness of the power spectrum, and, over the bins below 5 kHz,
    the dB spectrum's least-squares slope from 50 Hz (dB/kHz), the alpha ratio and the Hammarberg index.
    ``log_power`` is ``log(max(power, POWER_FLOOR))``, computed by numpy (vectorised, unlike numba's).

    Returns shape (t, 7), in that order.
    """
    n_frames, n_bins = power.shape
    top = np.searchsorted(freqs, HIGH_BAND_HZ[1])
    slope_band = (freqs[:top] >= SLOPE_BAND_HZ[0]) & (freqs[:top] < SLOPE_BAND_HZ[1])
    khz = (freqs[:top] - freqs[:top][slope_band].mean()) / 1000.0
    khz_norm = np.sum(khz[slope_band] ** 2)
    db = 10.0 / np.log(10.0)
    out = np.empty((n_frames, 7))
    magnitude = np.empty(n_bins)
    for f in range(n_frames):
        total = first = second = log_sum = floored_sum = 0.0
        for k in range(n_bins):
            magnitude[k] = math.sqrt(power[f, k])
            total += magnitude[k]
            first += magnitude[k] * freqs[k]
            second += magnitude[k] * freqs[k] * freqs[k]
            log_sum += log_power[f, k]
            floored_sum += max(power[f, k], POWER_FLOOR)
        total = max(total, TINY)
        centroid = first / total
        out[f, 0] = centroid
        out[f, 1] = math.sqrt(max(second / total - centroid * centroid, 0.0))
        running, k = 0.0, 0
        while k < n_bins - 1 and running + magnitude[k] < ROLLOFF_SHARE * total:
            running += magnitude[k]
            k += 1
        out[f, 2] = freqs[k]
        out[f, 3] = math.exp(log_sum / n_bins) / (floored_sum / n_bins)
        tilt = low = high = 0.0
        peak_low = peak_high = -np.inf
        for k in range(top):
            level = db * log_power[f, k]
            if slope_band[k]:
                tilt += level * khz[k]
            if LOW_BAND_HZ[0] <= freqs[k] < LOW_BAND_HZ[1]:
                low += power[f, k]
            elif HIGH_BAND_HZ[0] <= freqs[k] < HIGH_BAND_HZ[1]:
                high += power[f, k]
            if freqs[k] < HAMMARBERG_SPLIT_HZ:
                peak_low = max(peak_low, level)
            else:
                peak_high = max(peak_high, level)
        out[f, 4] = tilt / khz_norm
        out[f, 5] = 10.0 * math.log10(max(high, POWER_FLOOR) / max(low, POWER_FLOOR))
        out[f, 6] = peak_low - peak_high
    return out


def _zero_crossing_rate(y: np.ndarray, spectrogram: PowerSpectrogram) -> np.ndarray:
    """Shape (t,): share of sign changes in each spectrogram frame (frames as the spectrogram's)."""
    signs = np.signbit(np.pad(np.asarray(y), spectrogram.win_length // 2))
    changes = np.concatenate(([0], np.cumsum(signs[1:] != signs[:-1])))
    starts = np.arange(len(spectrogram.mean_square)) * spectrogram.hop
    ends = np.minimum(starts + spectrogram.win_length - 1, len(changes) - 1)
    return (changes[ends] - changes[np.minimum(starts, len(changes) - 1)]) / spectrogram.win_length


def spectral_features(y: np.ndarray, spectrogram: PowerSpectrogram, *, n_mfcc: int = 13) -> dict[str, float]:
    """Means (and a few standard deviations) of frame-wise spectral descriptors.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The clip's samples (for the zero-crossing rate).
    spectrogram : PowerSpectrogram
        Its shared power spectrogram.
    n_mfcc : int
        Number of cepstral coefficients (from 40 mel bands); the first is sqrt(40) times the mean
        log-mel level.

    Returns
    -------
    dict of str to float
        ``mfcc_names(n_mfcc)`` (dB; deltas in dB per frame), ``SHAPE_NAMES`` (Hz, dB, dB/kHz;
        flatness and ZCR as ratios; loudness in arbitrary units), ``LEVEL_NAMES`` (frame RMS
        levels, floored at -120 dBFS).
    """
    level_db = 10.0 * np.log10(np.maximum(spectrogram.mean_square, 10.0 ** (LEVEL_FLOOR_DBFS / 10.0)))
    out = {"rms_mean_dbfs": float(level_db.mean()), "rms_std_db": float(level_db.std())}
    active = spectrogram.active
    if not active.any():
        return {**dict.fromkeys((*mfcc_names(n_mfcc), *SHAPE_NAMES), float("nan")), **out}

    power = spectrogram.power[active]  # (t, f)
    freqs = spectrogram.frequencies
    mel = power @ _mel_basis(spectrogram.sr, spectrogram.n_fft).T  # (t, n_mels)
    mfcc = scipy.fft.dct(librosa.power_to_db(mel.T), type=2, norm="ortho", axis=0)[:n_mfcc]  # (n_mfcc, t)
    delta = librosa.feature.delta(mfcc, width=DELTA_WIDTH, mode="nearest")
    out.update(zip(mfcc_names(n_mfcc), (*mfcc.mean(axis=1), *mfcc.std(axis=1), *delta.std(axis=1))))

    log_power = np.log(np.maximum(power, POWER_FLOOR))
    centroid, bandwidth, rolloff, flatness, slope, alpha, hammarberg = _shape(power, log_power, freqs).T
    loudness = np.sum(mel**LOUDNESS_EXPONENT, axis=1)
    zcr = _zero_crossing_rate(y, spectrogram)[active]

    out.update(
        spectral_centroid_mean_hz=centroid.mean(),
        spectral_centroid_std_hz=centroid.std(),
        spectral_bandwidth_mean_hz=bandwidth.mean(),
        spectral_rolloff_mean_hz=rolloff.mean(),
        spectral_flatness_mean=flatness.mean(),
        spectral_slope_db_per_khz=slope.mean(),
        alpha_ratio_db=alpha.mean(),
        hammarberg_index_db=hammarberg.mean(),
        loudness_mean=loudness.mean(),
        loudness_std=loudness.std(),
        zcr_mean=zcr.mean(),
    )
    return {name: float(value) for name, value in out.items()}
