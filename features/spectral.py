"""Spectral features from one STFT: MFCC, centroid, bandwidth, roll-off, flatness, level, ZCR.

Frames of digital silence (below -120 dBFS) carry no spectral shape; they are left out of every
statistic but the level ones, so zero padding does not drag centroids towards 0 Hz. A clip with no
other frame has NaN shape features. A clip shorter than one frame is zero-padded to one frame.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

FRAME_S = 0.032
HOP_S = 0.010
N_MELS = 40
LEVEL_FLOOR_DBFS = -120.0
SHAPE_NAMES = (
    "spectral_centroid_mean_hz",
    "spectral_centroid_std_hz",
    "spectral_bandwidth_mean_hz",
    "spectral_rolloff_mean_hz",
    "spectral_flatness_mean",
    "zcr_mean",
)


def mfcc_names(n_mfcc: int) -> tuple[str, ...]:
    """``mfcc1_mean`` .. ``mfccN_mean`` then ``mfcc1_std`` .. ``mfccN_std``."""
    return tuple(f"mfcc{i}_{stat}" for stat in ("mean", "std") for i in range(1, n_mfcc + 1))


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS)


@lru_cache(maxsize=8)
def _parseval_weights(n_fft: int) -> np.ndarray:
    """Per-bin weights turning a one-sided Hann-windowed power spectrum into the frame's mean square."""
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[0] = 1.0
    if n_fft % 2 == 0:
        weights[-1] = 1.0
    return weights / (n_fft * np.sum(librosa.filters.get_window("hann", n_fft) ** 2))


def spectral_features(y: np.ndarray, *, sr: int, n_mfcc: int = 13) -> dict[str, float]:
    """Means (and a few standard deviations) of frame-wise spectral descriptors.

    One STFT (32 ms Hann frames, 10 ms hop) feeds the mel spectrogram (40 bands) and MFCCs, the
    spectral shape descriptors and the frame levels, which are exact RMS values (Parseval,
    corrected for the window's power) so that a full-scale sine reads -3 dBFS.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples.
    sr : int
        Sample rate of ``y``.
    n_mfcc : int
        Number of cepstral coefficients; the first is sqrt(40) times the mean log-mel level.

    Returns
    -------
    dict of str to float
        ``mfcc_names(n_mfcc)`` (dB), ``SHAPE_NAMES`` (Hz, flatness and ZCR as ratios),
        ``rms_mean_dbfs`` and ``rms_std_db`` (frame levels, floored at -120 dBFS).
    """
    n_fft = int(round(FRAME_S * sr))
    hop = int(round(HOP_S * sr))
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))  # (1 + n_fft // 2, t)
    power = magnitude**2
    mean_square = _parseval_weights(n_fft) @ power
    floor = 10.0 ** (LEVEL_FLOOR_DBFS / 10.0)
    level_db = 10.0 * np.log10(np.maximum(mean_square, floor))
    out = {"rms_mean_dbfs": float(level_db.mean()), "rms_std_db": float(level_db.std())}
    active = mean_square > floor
    if not active.any():
        return {**dict.fromkeys((*mfcc_names(n_mfcc), *SHAPE_NAMES), float("nan")), **out}

    magnitude, power = magnitude[:, active], power[:, active]
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(_mel_basis(sr, n_fft) @ power), n_mfcc=n_mfcc)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=n_fft)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0]
    out.update(zip(mfcc_names(n_mfcc), (*mfcc.mean(axis=1), *mfcc.std(axis=1))))
    out.update(
        spectral_centroid_mean_hz=centroid.mean(),
        spectral_centroid_std_hz=centroid.std(),
        spectral_bandwidth_mean_hz=librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft).mean(),
        spectral_rolloff_mean_hz=librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=n_fft).mean(),
        spectral_flatness_mean=librosa.feature.spectral_flatness(S=magnitude).mean(),
        zcr_mean=zcr[active].mean(),
    )
    return {name: float(value) for name, value in out.items()}
