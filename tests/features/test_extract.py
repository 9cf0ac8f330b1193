"""extract_features: the schema's keys in order, floats everywhere, NaN where undefined, never a crash."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest

import features.extract as extract
from features.audio import Audio, decode_audio
from features.extract import extract_features, warm_up
from features.schema import FEATURE_NAMES
from features.synth import synth_vowel
from features.voice import VOICE_NAMES
from voxflow.errors import FeatureError

SR = 16_000


def _audio(y: np.ndarray) -> Audio:
    y = np.asarray(y, dtype=np.float32)
    return Audio(samples=y, sample_rate=SR, source_rate=SR, channels=1, duration_s=len(y) / SR)


def _check_shape(features: dict[str, float]) -> None:
    assert tuple(features) == FEATURE_NAMES
    assert all(type(v) is float for v in features.values())


def test_a_vowel_gets_every_feature(vowel):
    features = extract_features(_audio(vowel))
    _check_shape(features)
    assert all(math.isfinite(v) for v in features.values())


def test_silence():
    features = extract_features(_audio(np.zeros(SR * 2)))
    _check_shape(features)
    assert features["voiced_fraction"] == 0.0 and features["rms_mean_dbfs"] == -120.0
    assert math.isnan(features["f0_mean_hz"]) and math.isnan(features["cpps_db"]) and math.isnan(features["mfcc1_mean"])


def test_white_noise():
    features = extract_features(_audio(0.1 * np.random.default_rng(0).standard_normal(SR * 2)))
    _check_shape(features)
    assert math.isnan(features["f0_mean_hz"]) and math.isnan(features["hnr_mean_db"])
    assert math.isfinite(features["cpps_db"]) and features["spectral_flatness_mean"] > 0.4


def test_fifty_milliseconds():
    features = extract_features(_audio(synth_vowel(f0_hz=150.0, duration_s=0.05)))
    _check_shape(features)
    assert all(math.isnan(features[name]) for name in VOICE_NAMES)
    assert all(math.isfinite(v) for name, v in features.items() if name not in VOICE_NAMES)


def test_clipped_square_wave():
    t = np.arange(SR * 2) / SR
    features = extract_features(_audio(np.sign(np.sin(2 * np.pi * 150 * t))))
    _check_shape(features)
    assert features["f0_mean_hz"] == pytest.approx(150.0, rel=0.01)


def test_pathological_voice_reads_worse_than_a_healthy_one():
    healthy = extract_features(_audio(synth_vowel(f0_hz=140.0, duration_s=3.0, jitter=0.004, shimmer=0.025, hnr_db=25)))
    sick = extract_features(_audio(synth_vowel(f0_hz=140.0, duration_s=3.0, jitter=0.03, shimmer=0.12, hnr_db=8.0)))
    for name in ("jitter_local", "jitter_ppq5", "shimmer_local", "shimmer_apq11"):
        assert sick[name] > 2 * healthy[name], name
    for name in ("hnr_mean_db", "cpps_db"):
        assert sick[name] < healthy[name] - 3, name


def test_library_refusals_become_feature_errors(monkeypatch, vowel):
    def refuse(*args, **kwargs):
        raise parselmouth.PraatError("Sound: pitch analysis not performed.")

    monkeypatch.setattr(extract, "voice_features", refuse)
    with pytest.raises(FeatureError, match="PraatError: Sound: pitch analysis not performed."):
        extract_features(_audio(vowel))


def test_warm_up_runs():
    warm_up()


def test_voiced_records(voiced_dir):
    for header in sorted(voiced_dir.glob("voice*.hea"))[::25]:
        features = extract_features(decode_audio(header))
        _check_shape(features)
        assert sum(math.isnan(v) for v in features.values()) <= 1, header.name
