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

import librosa
import numpy as np
import scipy.fft

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

    magnitude = np.sqrt(power)
    total = np.maximum(magnitude.sum(axis=1), np.finfo(np.float32).tiny)
    moments = magnitude @ np.stack([freqs, freqs**2], axis=1).astype(np.float32) / total[:, None]
    centroid = moments[:, 0]
    bandwidth = np.sqrt(np.maximum(moments[:, 1] - centroid**2, 0.0))
    rolloff = freqs[np.argmax(np.cumsum(magnitude, axis=1) >= ROLLOFF_SHARE * total[:, None], axis=1)]
    log_power = np.log(np.maximum(power, POWER_FLOOR))
    flatness = np.exp(log_power.mean(axis=1)) / np.maximum(power, POWER_FLOOR).mean(axis=1)

    top = int(np.searchsorted(freqs, HIGH_BAND_HZ[1]))
    power_db = (10.0 / np.log(10.0)) * log_power[:, :top]
    freqs = freqs[:top]
    slope_band = _band(freqs, *SLOPE_BAND_HZ)
    khz = (freqs[slope_band] - freqs[slope_band].mean()) / 1000.0
    slope = power_db[:, slope_band] @ khz.astype(np.float32) / (khz @ khz)
    bands = np.stack([_band(freqs, *LOW_BAND_HZ), _band(freqs, *HIGH_BAND_HZ)], axis=1).astype(np.float32)
    low_energy, high_energy = np.maximum(power[:, :top] @ bands, POWER_FLOOR).T
    alpha = 10.0 * np.log10(high_energy / low_energy)
    below = freqs < HAMMARBERG_SPLIT_HZ
    hammarberg = power_db[:, below].max(axis=1) - power_db[:, ~below].max(axis=1)
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
