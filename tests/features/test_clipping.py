"""flat_top_fraction: clipping is flat tops at the extremes, whatever the level; voice and tones have none."""

from __future__ import annotations

import numpy as np
import pytest

from features.clipping import flat_top_fraction
from features.synth import synth_vowel

TONE_LIMIT = 0.005  # a 16-bit tone's rounded peak may pair two equal samples now and then, rarely


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767) / 32768


@pytest.mark.parametrize("sr", [16_000, 48_000])
@pytest.mark.parametrize("peak", [1.0, 0.1, 0.01])
def test_voice_has_no_flat_tops(sr, peak):
    y = synth_vowel(f0_hz=120.0, duration_s=2.0, sr=sr, jitter=0.01, shimmer=0.04, hnr_db=30.0)
    assert flat_top_fraction(_pcm16(2 * peak * y)) == 0.0


@pytest.mark.parametrize("freq", [100.0, 220.0, 440.0])
def test_pure_tones_are_not_flat(freq):
    t = np.arange(32_000) / 16_000
    assert flat_top_fraction(_pcm16(0.5 * np.sin(2 * np.pi * freq * t + 0.3))) < TONE_LIMIT


def test_square_wave_at_half_scale_is_all_flat_top():
    t = np.arange(16_000) / 16_000
    assert flat_top_fraction(0.5 * np.sign(np.sin(2 * np.pi * 150 * t + 0.1))) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("gain", [1.5, 3.0])
def test_clipping_share_is_measured_at_any_level(gain):
    y = synth_vowel(f0_hz=150.0, duration_s=2.0, jitter=0.01, shimmer=0.04, hnr_db=25.0)
    clipped = np.clip(2 * gain * y, -1.0, 1.0)
    true_share = np.mean(np.abs(clipped) >= 1.0)
    # attenuating after the clip (a gain stage downstream) keeps the tops flat
    assert flat_top_fraction(_pcm16(0.3 * clipped)) == pytest.approx(true_share, rel=0.05)


def test_one_sided_clipping_is_counted():
    y = synth_vowel(f0_hz=150.0, duration_s=2.0, hnr_db=25.0)
    clipped = np.minimum(2 * y, 0.6)
    assert flat_top_fraction(clipped) == pytest.approx(np.mean(clipped >= 0.6), rel=0.05)


def test_the_worst_channel_counts():
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, hnr_db=25.0)
    clipped = np.clip(4 * y, -1.0, 1.0)
    stereo = np.column_stack([y, clipped])
    assert flat_top_fraction(stereo) == flat_top_fraction(clipped) > 0.1


def test_silence_has_no_flat_top():
    assert flat_top_fraction(np.zeros(1_000)) == 0.0
