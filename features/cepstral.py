"""Smoothed cepstral peak prominence (CPPS), the cepstral measure of dysphonia.

After Hillenbrand et al. (1994) and Praat's ``PowerCepstrogram: Get CPPS`` with its defaults: per
frame, the power cepstrum of the dB power spectrum from 0 to 5 kHz; smoothed (as power) over 3
frames (30 ms) and 0.5 ms of quefrency; in dB, the height of its peak between 1/330 s and 1/60 s
above a straight line fitted from 1 ms to the highest quefrency; averaged over frames. Frames are
3 periods of the 60 Hz floor (50 ms Hann) so that the lowest voices show two full periods; the
STFT is separate from the 32 ms one in :mod:`features.spectral`, whose quefrency range stops at
16 ms, below a 60 Hz period. Measured against Praat (2 ms time step, robust line fit) on 42 VOICED
records: Pearson 0.99, Spearman 0.98, 2.5 dB lower on average; on synthetic vowels it rises with
HNR like Praat's.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d

F0_FLOOR_HZ = 60.0
F0_CEILING_HZ = 330.0
MAX_FREQUENCY_HZ = 5000.0
WINDOW_PERIODS = 3
HOP_S = 0.010
TIME_SMOOTHING_FRAMES = 3
QUEFRENCY_SMOOTHING_S = 0.0005
TILT_START_S = 0.001
LEVEL_FLOOR_DBFS = -120.0
EPS = 1e-12


def cepstral_features(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """Smoothed cepstral peak prominence of a clip.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples.
    sr : int
        Sample rate of ``y``.

    Returns
    -------
    dict of str to float
        ``cpps_db``: mean over frames above -120 dBFS (NaN when there are none).
    """
    win_length = int(round(WINDOW_PERIODS * sr / F0_FLOOR_HZ))
    n_fft = 1 << (win_length - 1).bit_length()
    hop = int(round(HOP_S * sr))
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    power = np.abs(librosa.stft(y, n_fft=n_fft, win_length=win_length, hop_length=hop)).T ** 2  # (t, 1 + n_fft // 2)
    window_power = np.sum(librosa.filters.get_window("hann", win_length) ** 2)
    mean_square = 2.0 * power.sum(axis=1) / (n_fft * window_power)  # Parseval, up to the DC/Nyquist bins
    top_bin = int(min(MAX_FREQUENCY_HZ, sr / 2) * n_fft / sr)
    power = power[mean_square > 10.0 ** (LEVEL_FLOOR_DBFS / 10.0), : top_bin + 1]
    if len(power) == 0:
        return {"cpps_db": float("nan")}

    quefrency_rate = 2 * top_bin * sr / n_fft  # the band 0..top_bin read as a signal sampled at this rate
    cepstrum = scipy.fft.irfft(10.0 * np.log10(power + EPS), n=2 * top_bin, axis=1)[:, : top_bin + 1] ** 2
    cepstrum = uniform_filter1d(cepstrum, TIME_SMOOTHING_FRAMES, axis=0, mode="nearest")
    smoothing_bins = max(1, int(round(QUEFRENCY_SMOOTHING_S * quefrency_rate)) | 1)
    cepstrum = uniform_filter1d(cepstrum, smoothing_bins, axis=1, mode="nearest")
    cepstrum_db = 10.0 * np.log10(np.maximum(cepstrum, 0.0) + EPS**2)  # filters can dip a hair below 0

    quefrency = np.arange(top_bin + 1) / quefrency_rate
    tilt = quefrency >= TILT_START_S
    centred = quefrency[tilt] - quefrency[tilt].mean()
    slope = cepstrum_db[:, tilt] @ centred / (centred @ centred)  # least-squares line per frame
    intercept = cepstrum_db[:, tilt].mean(axis=1) - slope * quefrency[tilt].mean()
    search = np.flatnonzero((quefrency >= 1.0 / F0_CEILING_HZ) & (quefrency <= 1.0 / F0_FLOOR_HZ))
    peak = search[np.argmax(cepstrum_db[:, search], axis=1)]
    prominence = cepstrum_db[np.arange(len(peak)), peak] - (slope * quefrency[peak] + intercept)
    return {"cpps_db": float(prominence.mean())}
