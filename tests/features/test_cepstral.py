"""CPPS: higher for clearer voices, low for noise, NaN for silence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.cepstral import cepstral_features
from features.spectrogram import power_spectrogram
from features.synth import synth_vowel

SR = 16_000


def _cpps(y: np.ndarray) -> float:
    return cepstral_features(power_spectrogram(y, sr=SR))["cpps_db"]


@pytest.mark.parametrize("f0", [100.0, 150.0, 220.0])
def test_cpps_rises_with_hnr(f0):
    clips = [synth_vowel(f0_hz=f0, duration_s=2.0, hnr_db=h) for h in (0, 10, 20, 30)]
    values = [_cpps(y) for y in clips]
    assert values == sorted(values)
    assert values[-1] - values[0] > 5.0


def test_cpps_falls_with_jitter():
    steady = _cpps(synth_vowel(f0_hz=150.0, duration_s=2.0, jitter=0.005, hnr_db=25.0))
    rough = _cpps(synth_vowel(f0_hz=150.0, duration_s=2.0, jitter=0.04, hnr_db=25.0))
    assert steady > rough + 1.0


def test_white_noise_has_little_prominence():
    noise = _cpps(0.1 * np.random.default_rng(0).standard_normal(SR * 2))
    voice = _cpps(synth_vowel(f0_hz=150.0, duration_s=2.0, hnr_db=20.0))
    assert noise < 6.0 < voice


def test_level_does_not_matter():
    y = synth_vowel(f0_hz=150.0, duration_s=2.0, hnr_db=20.0)
    loud, quiet = (_cpps(g * y) for g in (1.0, 0.01))
    assert loud == pytest.approx(quiet, abs=0.01)


def test_silence_is_nan_and_short_clips_are_finite():
    assert math.isnan(_cpps(np.zeros(SR)))
    assert math.isfinite(_cpps(synth_vowel(f0_hz=150.0, duration_s=0.05)))
