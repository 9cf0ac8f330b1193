"""spectral_features on signals whose answers are known: tones, noise, gain changes, padding, silence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.spectral import SHAPE_NAMES, mfcc_names, spectral_features
from features.synth import synth_vowel

SR = 16_000
T = np.arange(2 * SR) / SR
TONE = np.sin(2 * np.pi * 1000 * T)  # full scale, 1 kHz


def test_keys_and_types():
    features = spectral_features(synth_vowel(f0_hz=150.0, duration_s=1.0), sr=SR)
    assert set(features) == {*mfcc_names(13), *SHAPE_NAMES, "rms_mean_dbfs", "rms_std_db"}
    assert all(type(v) is float and math.isfinite(v) for v in features.values())


def test_n_mfcc_is_honoured():
    features = spectral_features(TONE, sr=SR, n_mfcc=20)
    assert "mfcc20_std" in features and "mfcc21_mean" not in features


def test_full_scale_sine_reads_minus_3_dbfs():
    features = spectral_features(TONE, sr=SR)
    assert features["rms_mean_dbfs"] == pytest.approx(-3.01, abs=0.1)
    assert features["rms_std_db"] < 0.5


def test_tone_spectral_shape():
    features = spectral_features(0.5 * TONE, sr=SR)
    assert features["spectral_centroid_mean_hz"] == pytest.approx(1000, rel=0.02)
    assert features["spectral_rolloff_mean_hz"] == pytest.approx(1000, abs=2 * SR / 512)
    assert features["spectral_flatness_mean"] < 0.01
    assert features["zcr_mean"] == pytest.approx(2 * 1000 / SR, rel=0.03)  # edge frames are half padding


def test_white_noise_spectral_shape():
    features = spectral_features(0.1 * np.random.default_rng(0).standard_normal(2 * SR), sr=SR)
    assert features["spectral_centroid_mean_hz"] == pytest.approx(SR / 4, rel=0.05)
    assert features["spectral_flatness_mean"] > 0.4
    assert features["zcr_mean"] == pytest.approx(0.5, rel=0.05)


def test_gain_moves_only_the_level_terms():
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, jitter=0.01, hnr_db=25.0)
    loud, quiet = spectral_features(y, sr=SR), spectral_features(0.1 * y, sr=SR)
    assert loud["rms_mean_dbfs"] - quiet["rms_mean_dbfs"] == pytest.approx(20.0, abs=0.01)
    # mfcc1 is the orthonormal DCT's DC term: +20 dB in each of 40 mel bands adds 20 * sqrt(40)
    assert loud["mfcc1_mean"] - quiet["mfcc1_mean"] == pytest.approx(20 * np.sqrt(40), rel=0.01)
    for name in (*mfcc_names(13)[1:13], "spectral_centroid_mean_hz", "spectral_flatness_mean"):
        assert loud[name] == pytest.approx(quiet[name], rel=1e-3, abs=1e-3), name


def test_digital_silence_is_left_out_of_shape_statistics():
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, hnr_db=25.0)
    padded = np.concatenate([np.zeros(SR), y, np.zeros(SR)])
    plain, with_pads = spectral_features(y, sr=SR), spectral_features(padded, sr=SR)
    # without the exclusion, 2 s of zeros in 3 s would pull the mean centroid to a third
    assert with_pads["spectral_centroid_mean_hz"] == pytest.approx(plain["spectral_centroid_mean_hz"], rel=0.03)
    assert with_pads["rms_mean_dbfs"] < plain["rms_mean_dbfs"] - 30  # levels do see the silence


def test_silence_gives_floor_level_and_nan_shape():
    features = spectral_features(np.zeros(SR), sr=SR)
    assert features["rms_mean_dbfs"] == -120.0 and features["rms_std_db"] == 0.0
    assert all(math.isnan(features[name]) for name in (*mfcc_names(13), *SHAPE_NAMES))


def test_clip_shorter_than_a_frame():
    features = spectral_features(synth_vowel(f0_hz=150.0, duration_s=0.01), sr=SR)
    assert all(math.isfinite(v) for v in features.values())
