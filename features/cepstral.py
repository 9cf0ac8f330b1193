"""Smoothed cepstral peak prominence (CPPS), the cepstral measure of dysphonia.

After Hillenbrand et al. (1994) and Praat's ``PowerCepstrogram: Get CPPS`` with its defaults: per
frame, the power cepstrum of the dB power spectrum from 0 to 5 kHz; smoothed (as power) over 3
frames (30 ms) and 0.5 ms of quefrency; in dB, the height of its peak between 1/330 s and 1/60 s
above a straight line fitted from 1 ms to the highest quefrency; averaged over frames. It reads the
shared 50 ms spectrogram (:mod:`features.spectrogram`), whose frames hold three periods of a 60 Hz
voice. Measured against Praat on 42 VOICED records (``To PowerCepstrogram`` 60 Hz, 2 ms step, then
``Get CPPS`` with its defaults: 20 ms x 0.5 ms smoothing, straight robust tilt line): Pearson 0.99,
Spearman 0.98, 1.8 dB lower on average; on synthetic vowels it rises with HNR like Praat's.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d

from features.spectrogram import PowerSpectrogram

F0_FLOOR_HZ = 60.0
F0_CEILING_HZ = 330.0
MAX_FREQUENCY_HZ = 5000.0
TIME_SMOOTHING_FRAMES = 3
QUEFRENCY_SMOOTHING_S = 0.0005
TILT_START_S = 0.001
EPS = 1e-12


def cepstral_features(spectrogram: PowerSpectrogram) -> dict[str, float]:
    """Smoothed cepstral peak prominence of a clip.

    Parameters
    ----------
    spectrogram : PowerSpectrogram
        The clip's shared power spectrogram.

    Returns
    -------
    dict of str to float
        ``cpps_db``: mean over frames above -120 dBFS (NaN when there are none).
    """
    sr, n_fft = spectrogram.sr, spectrogram.n_fft
    top_bin = int(min(MAX_FREQUENCY_HZ, sr / 2) * n_fft / sr)
    power = spectrogram.power[spectrogram.active, : top_bin + 1]
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
