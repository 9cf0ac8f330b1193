"""synth_vowel is ground truth for the voice tests, so its own perturbations are checked here."""

from __future__ import annotations

import numpy as np
import pytest

from features.synth import synth_vowel

SR = 16_000
PERIOD = 160  # samples of a 100 Hz period at 16 kHz: an integer, so periods can be cut exactly


def _period_peaks(y: np.ndarray) -> np.ndarray:
    return np.abs(y[: len(y) // PERIOD * PERIOD]).reshape(-1, PERIOD).max(axis=1)[5:]  # skip the filter's onset


def test_shape_dtype_and_peak():
    y = synth_vowel(f0_hz=150.0, duration_s=1.25, jitter=0.01, shimmer=0.05, hnr_db=20.0)
    assert y.shape == (20_000,) and y.dtype == np.float32
    assert np.abs(y).max() == pytest.approx(0.5)


def test_deterministic_per_seed():
    a = synth_vowel(f0_hz=150.0, duration_s=0.5, jitter=0.01, hnr_db=20.0, seed=3)
    b = synth_vowel(f0_hz=150.0, duration_s=0.5, jitter=0.01, hnr_db=20.0, seed=3)
    c = synth_vowel(f0_hz=150.0, duration_s=0.5, jitter=0.01, hnr_db=20.0, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_without_perturbation_every_period_is_the_same():
    y = synth_vowel(f0_hz=100.0, duration_s=1.0)
    np.testing.assert_allclose(y[PERIOD * 5 : -PERIOD], y[PERIOD * 6 :], atol=1e-5)


def test_jitter_breaks_periodicity():
    y = synth_vowel(f0_hz=100.0, duration_s=1.0, jitter=0.01)
    assert np.abs(y[PERIOD * 5 : -PERIOD] - y[PERIOD * 6 :]).max() > 0.05


@pytest.mark.parametrize("shimmer", [0.02, 0.05, 0.1])
def test_shimmer_is_the_relative_mean_difference_of_period_peaks(shimmer):
    peaks = _period_peaks(synth_vowel(f0_hz=100.0, duration_s=3.0, shimmer=shimmer, seed=1))
    measured = np.mean(np.abs(np.diff(peaks))) / np.mean(peaks)
    # residual formant ringing from the previous period blurs peak heights by a few percent
    assert measured == pytest.approx(shimmer, rel=0.1)


@pytest.mark.parametrize("hnr_db", [0.0, 10.0, 20.0, 30.0])
def test_noise_sits_at_the_requested_hnr(hnr_db):
    clean = synth_vowel(f0_hz=150.0, duration_s=2.0, seed=2).astype(np.float64)
    noisy = synth_vowel(f0_hz=150.0, duration_s=2.0, hnr_db=hnr_db, seed=2).astype(np.float64)
    scale = noisy @ clean / (clean @ clean)  # the periodic part, up to the peak normalisation
    noise = noisy - scale * clean
    assert 10 * np.log10(np.sum((scale * clean) ** 2) / np.sum(noise**2)) == pytest.approx(hnr_db, abs=0.3)


def test_formants_shape_the_spectrum():
    y = synth_vowel(f0_hz=100.0, duration_s=2.0)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    band = lambda lo, hi: spectrum[(freqs >= lo) & (freqs < hi)].max()  # noqa: E731
    assert band(600, 800) > 3 * band(1500, 2000)  # F1 (700 Hz) stands above the F2-F3 valley
