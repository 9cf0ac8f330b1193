"""features.pitch against Praat's own ``To Pitch (ac)`` (parselmouth), the reference it transcribes.

Measured on all 208 VOICED records (78,373 frames): every frame voiced or not as in Praat, F0 within
1.5e-6 and strength within 3.4e-7 of Praat's per frame (the autocorrelation runs in float32), per-record
mean F0 within 2.5e-8. The tolerances
below keep a margin over that for FFT and rounding differences across library versions, and stay far
below anything clinical (1e-5 of F0 is 0.0002 semitones):

- per record, at most one frame voiced differently (none in the median record);
- per-record mean F0, relative error: median <= 1e-6, 90th percentile <= 1e-5;
- every frame voiced in both: F0 within 1e-4 (relative), strength within 1e-6.
"""

from __future__ import annotations

import numpy as np
import parselmouth
import pytest

from features.pitch import to_pitch_ac
from features.synth import synth_vowel

SR = 16_000
FLOOR_HZ, CEILING_HZ = 60.0, 600.0
MAX_VOICING_DIFFS = 1
F0_MEAN_MEDIAN_REL = 1e-6
F0_MEAN_P90_REL = 1e-5
FRAME_F0_REL = 1e-4
FRAME_STRENGTH_ABS = 1e-6


def _praat(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pitch = parselmouth.Sound(y.astype(np.float64), sampling_frequency=SR).to_pitch_ac(
        pitch_floor=FLOOR_HZ, pitch_ceiling=CEILING_HZ
    )
    frames = pitch.selected_array
    return pitch.xs(), frames["frequency"], frames["strength"]


def _mine(y: np.ndarray):
    return to_pitch_ac(y, sr=SR, f0_min_hz=FLOOR_HZ, f0_max_hz=CEILING_HZ)


def _assert_frames_match(y: np.ndarray) -> int:
    """Same frame times; F0 and strength per frame voiced in both; returns the count of voicing differences."""
    times, f0, strength = _praat(y)
    mine = _mine(y)
    np.testing.assert_allclose(mine.times, times, rtol=0, atol=1e-12)
    both = (f0 > 0) & (mine.f0_hz > 0)
    np.testing.assert_allclose(mine.f0_hz[both], f0[both], rtol=FRAME_F0_REL)
    np.testing.assert_allclose(mine.strength[both], strength[both], rtol=0, atol=FRAME_STRENGTH_ABS)
    return int(np.sum((f0 > 0) != (mine.f0_hz > 0)))


def test_voiced_records_track_as_praat(voiced_dir):
    from features.audio import decode_audio

    voicing_diffs, f0_errors = [], []
    for header in sorted(voiced_dir.glob("voice*.hea"))[::4]:
        y = decode_audio(header).samples
        voicing_diffs.append(_assert_frames_match(y))
        _, f0, _ = _praat(y)
        mine = _mine(y).f0_hz
        f0_errors.append(abs(mine[mine > 0].mean() / f0[f0 > 0].mean() - 1.0))
    assert max(voicing_diffs) <= MAX_VOICING_DIFFS and np.median(voicing_diffs) == 0
    assert np.median(f0_errors) <= F0_MEAN_MEDIAN_REL
    assert np.percentile(f0_errors, 90) <= F0_MEAN_P90_REL


@pytest.mark.parametrize("f0", [80.0, 150.0, 300.0, 500.0])
@pytest.mark.parametrize("hnr", [5.0, 30.0])
def test_synthetic_vowels_track_as_praat(f0, hnr):
    y = synth_vowel(f0_hz=f0, duration_s=1.5, jitter=0.01, shimmer=0.04, hnr_db=hnr)
    assert _assert_frames_match(y) == 0


@pytest.mark.parametrize(
    "kind", ["silence", "constant", "noise", "square", "click", "three_periods", "odd_length"]
)
def test_degenerate_input_tracks_as_praat(kind):
    n = SR
    t = np.arange(n) / SR
    y = {
        "silence": np.zeros(n),
        "constant": np.full(n, 0.3),
        "noise": 0.1 * np.random.default_rng(0).standard_normal(n),
        "square": np.sign(np.sin(2 * np.pi * 160 * t)),
        "click": np.where(np.arange(n) == n // 2, 0.5, 0.0),
        "three_periods": synth_vowel(f0_hz=150.0, duration_s=0.05),
        "odd_length": synth_vowel(f0_hz=210.0, duration_s=0.7)[:11_111],
    }[kind]
    assert _assert_frames_match(y) == 0
