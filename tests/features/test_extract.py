"""extract_features: the schema's keys in order, floats everywhere, NaN only where a flag says why, never a crash."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features.extract as extract
from features.audio import decode_audio
from features.extract import extract_features, feature_flags, warm_up
from features.schema import FEATURE_NAMES
from features.synth import synth_vowel
from features.formants import FORMANT_NAMES
from features.modulation import F0_MODULATION_NAMES
from features.voice import VOICE_NAMES
from tests.features.conftest import mono_audio
from voxflow.errors import FeatureError

SR = 16_000


# what each flag may leave NaN (feature_flags' docstring)
EXPLAINED = {
    "too_short_for_pitch": {*VOICE_NAMES, *FORMANT_NAMES},
    "unvoiced": {*VOICE_NAMES, *FORMANT_NAMES} - {"voiced_fraction"},
    "too_few_periods": {name for name in VOICE_NAMES if name.startswith(("jitter", "shimmer", "voice_break"))}
    | set(F0_MODULATION_NAMES),
    "no_formants": set(FORMANT_NAMES),
    "digital_silence": {name for name in FEATURE_NAMES if name.startswith(("mfcc", "spectral", "loudness"))}
    | {"alpha_ratio_db", "hammarberg_index_db", "zcr_mean", "cpps_db"},
}


def _check_shape(features: dict[str, float]) -> tuple[str, ...]:
    """Keys, types, and every NaN explained by a flag; returns the flags."""
    assert tuple(features) == FEATURE_NAMES
    assert all(type(v) is float for v in features.values())
    flags = feature_flags(features)
    explained = set().union(*(EXPLAINED[flag] for flag in flags))
    assert {name for name, v in features.items() if math.isnan(v)} <= explained, flags
    return flags


def test_a_vowel_gets_every_feature(vowel):
    features = extract_features(mono_audio(vowel))
    assert _check_shape(features) == ()
    assert all(math.isfinite(v) for v in features.values())


def test_silence():
    features = extract_features(mono_audio(np.zeros(SR * 2)))
    assert _check_shape(features) == ("unvoiced", "digital_silence")
    assert features["voiced_fraction"] == 0.0 and features["rms_mean_dbfs"] == -120.0
    assert math.isnan(features["f0_mean_hz"]) and math.isnan(features["cpps_db"]) and math.isnan(features["mfcc1_mean"])


def test_white_noise():
    features = extract_features(mono_audio(0.1 * np.random.default_rng(0).standard_normal(SR * 2)))
    assert _check_shape(features) == ("unvoiced",)
    assert math.isnan(features["f0_mean_hz"]) and math.isnan(features["hnr_mean_db"])
    assert math.isfinite(features["cpps_db"]) and features["spectral_flatness_mean"] > 0.4


def test_fifty_milliseconds():
    features = extract_features(mono_audio(synth_vowel(f0_hz=150.0, duration_s=0.05)))
    assert _check_shape(features) == ("too_short_for_pitch",)
    assert all(math.isnan(features[name]) for name in (*VOICE_NAMES, *FORMANT_NAMES))
    assert all(math.isfinite(v) for name, v in features.items() if name not in {*VOICE_NAMES, *FORMANT_NAMES})


def test_clipped_square_wave():
    t = np.arange(SR * 2) / SR
    features = extract_features(mono_audio(np.sign(np.sin(2 * np.pi * 150 * t))))
    # a square wave has harmonics but no resonances: LPC finds at most one formant-like pole
    assert _check_shape(features) == ("no_formants",)
    assert features["f0_mean_hz"] == pytest.approx(150.0, rel=0.01)
    assert 0 <= features["jitter_local"] < 0.02 and 0 <= features["shimmer_local"] < 0.02


def test_pathological_voice_reads_worse_than_a_healthy_one():
    healthy = extract_features(mono_audio(synth_vowel(f0_hz=140.0, duration_s=3.0, jitter=0.004, shimmer=0.025, hnr_db=25)))
    sick = extract_features(mono_audio(synth_vowel(f0_hz=140.0, duration_s=3.0, jitter=0.03, shimmer=0.12, hnr_db=8.0)))
    for name in ("jitter_local", "jitter_ppq5", "shimmer_local", "shimmer_apq11", "nhr_mean"):
        assert sick[name] > 2 * healthy[name], name
    for name in ("hnr_mean_db", "cpps_db"):
        assert sick[name] < healthy[name] - 3, name


def test_library_refusals_become_feature_errors(monkeypatch, vowel):
    def refuse(*args, **kwargs):
        raise librosa.ParameterError("Audio buffer is not finite everywhere")

    monkeypatch.setattr(extract, "voice_features", refuse)
    with pytest.raises(FeatureError, match="ParameterError: Audio buffer is not finite everywhere"):
        extract_features(mono_audio(vowel))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_overflowing_features_are_a_feature_error(vowel):
    # samples past the quality gate's full-scale limit overflow the power spectrum; XGBoost refuses inf
    with pytest.raises(FeatureError, match=r"infinite feature values \(.*rms_mean_dbfs.*\): samples far beyond full scale\?"):
        extract_features(mono_audio(1e30 * vowel))


def test_warm_up_runs():
    warm_up()


def test_voiced_records(voiced_dir):
    for header in sorted(voiced_dir.glob("voice*.hea"))[::25]:
        features = extract_features(decode_audio(header))
        assert _check_shape(features) == (), header.name


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["zeros", "constant", "noise", "square", "vowel", "click"]),
    st.integers(0, 3 * SR),
    st.floats(1e-4, 1.0),
)
def test_degenerate_input_never_raises_and_every_nan_is_flagged(kind, n, level):
    t = np.arange(n) / SR
    make = {
        "zeros": lambda: np.zeros(n),
        "constant": lambda: np.full(n, level),
        "noise": lambda: level * np.random.default_rng(n).standard_normal(n),
        "square": lambda: level * np.sign(np.sin(2 * np.pi * 137 * t)),
        "vowel": lambda: level * synth_vowel(f0_hz=180.0, duration_s=max(n, 1) / SR, hnr_db=15.0),
        "click": lambda: np.where(np.arange(n) == n // 2, level, 0.0),
    }
    y = make[kind]()
    _check_shape(extract_features(mono_audio(y)))


def test_flags_name_the_reasons_in_a_fixed_order():
    features = dict.fromkeys(FEATURE_NAMES, 1.0)
    assert feature_flags(features) == ()
    assert feature_flags({**features, "jitter_ppq5": math.nan, "f2_mean_hz": math.nan}) == ("too_few_periods", "no_formants")
    assert feature_flags({**features, "f0_mean_hz": math.nan, "cpps_db": math.nan}) == ("unvoiced", "digital_silence")
    assert feature_flags({**features, "voiced_fraction": math.nan}) == ("too_short_for_pitch",)
