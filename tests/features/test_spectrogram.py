"""The shared power spectrogram against librosa's STFT, and its levels."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from features.spectrogram import power_spectrogram

SR = 16_000


def test_matches_librosa_stft():
    y = 0.1 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    spectrogram = power_spectrogram(y, sr=SR)
    reference = np.abs(librosa.stft(y, n_fft=800, hop_length=160)).T ** 2
    assert spectrogram.power.shape == reference.shape
    np.testing.assert_allclose(spectrogram.power, reference, rtol=0, atol=1e-5 * reference.max())
    assert spectrogram.frequencies[1] == SR / 800


@pytest.mark.parametrize("n", [0, 1, 159, 160, 799, 800, 16_001])
def test_frame_count_and_short_clips(n):
    spectrogram = power_spectrogram(np.full(n, 0.1, dtype=np.float32), sr=SR)
    assert spectrogram.power.shape == (1 + n // 160, 401)
    assert np.isfinite(spectrogram.power).all()


def test_levels_are_exact_rms():
    t = np.arange(2 * SR) / SR
    spectrogram = power_spectrogram(np.sin(2 * np.pi * 440 * t), sr=SR)
    inner = spectrogram.mean_square[5:-5]  # edge frames are half padding
    np.testing.assert_allclose(10 * np.log10(inner), -3.01, atol=0.05)


def test_digital_silence_is_not_active():
    y = np.concatenate([np.zeros(SR), 0.1 * np.ones(SR)]).astype(np.float32)
    active = power_spectrogram(y, sr=SR).active
    assert not active[:90].any() and active[110:].all()
