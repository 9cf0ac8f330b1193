"""spectral_features on signals whose answers are known: tones, shaped noise, gain changes, padding, silence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.spectral import LEVEL_NAMES, SHAPE_NAMES, mfcc_names, spectral_features
from features.spectrogram import power_spectrogram
from features.synth import synth_vowel

SR = 16_000
T = np.arange(2 * SR) / SR
TONE = np.sin(2 * np.pi * 1000 * T)  # full scale, 1 kHz
BIN_HZ = SR / 800
# White noise: each frame's band energies scatter by a few percent; measured within 0.1 dB of the
# exact ratio of the band widths, and a slope within 0.1 dB/kHz of flat.
NOISE_BALANCE_TOLERANCE_DB = 0.3
SLOPE_TOLERANCE_DB_PER_KHZ = 0.3
TONE_BALANCE_TOLERANCE_DB = 0.1  # two tones on bin centres: only Hann leakage within a band


def _spectral(y: np.ndarray, **options) -> dict[str, float]:
    return spectral_features(y, power_spectrogram(y, sr=SR), **options)


def _white(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))


def test_keys_and_types():
    features = _spectral(synth_vowel(f0_hz=150.0, duration_s=1.0))
    assert set(features) == {*mfcc_names(13), *SHAPE_NAMES, *LEVEL_NAMES}
    assert all(type(v) is float and math.isfinite(v) for v in features.values())


def test_n_mfcc_is_honoured():
    features = _spectral(TONE, n_mfcc=20)
    assert "mfcc20_delta_std" in features and "mfcc21_mean" not in features


def test_full_scale_sine_reads_minus_3_dbfs():
    features = _spectral(TONE)
    assert features["rms_mean_dbfs"] == pytest.approx(-3.01, abs=0.1)
    assert features["rms_std_db"] < 0.5


def test_tone_spectral_shape():
    features = _spectral(0.5 * TONE)
    assert features["spectral_centroid_mean_hz"] == pytest.approx(1000, rel=0.02)
    assert features["spectral_rolloff_mean_hz"] == pytest.approx(1000, abs=2 * BIN_HZ)
    assert features["spectral_flatness_mean"] < 0.01
    assert features["zcr_mean"] == pytest.approx(2 * 1000 / SR, rel=0.03)  # edge frames are half padding


def test_white_noise_spectral_shape():
    features = _spectral(0.1 * np.random.default_rng(0).standard_normal(2 * SR))
    assert features["spectral_centroid_mean_hz"] == pytest.approx(SR / 4, rel=0.05)
    assert features["spectral_flatness_mean"] > 0.4
    assert features["zcr_mean"] == pytest.approx(0.5, rel=0.05)


def test_gain_moves_only_the_level_terms():
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, jitter=0.01, hnr_db=25.0)
    loud, quiet = _spectral(y), _spectral(0.1 * y)
    assert loud["rms_mean_dbfs"] - quiet["rms_mean_dbfs"] == pytest.approx(20.0, abs=0.01)
    # mfcc1 is the orthonormal DCT's DC term: +20 dB in each of 40 mel bands adds 20 * sqrt(40)
    assert loud["mfcc1_mean"] - quiet["mfcc1_mean"] == pytest.approx(20 * np.sqrt(40), rel=0.01)
    # power to the 0.3: +20 dB multiplies every band's loudness by 100 ** 0.3
    assert loud["loudness_mean"] / quiet["loudness_mean"] == pytest.approx(100**0.3, rel=1e-3)
    balance = ("spectral_slope_db_per_khz", "alpha_ratio_db", "hammarberg_index_db")
    for name in (*mfcc_names(13)[1:13], *mfcc_names(13)[13:], "spectral_centroid_mean_hz", "spectral_flatness_mean", *balance):
        assert loud[name] == pytest.approx(quiet[name], rel=1e-3, abs=1e-3), name


def test_digital_silence_is_left_out_of_shape_statistics():
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, hnr_db=25.0)
    padded = np.concatenate([np.zeros(SR), y, np.zeros(SR)])
    plain, with_pads = _spectral(y), _spectral(padded)
    # without the exclusion, 2 s of zeros in 3 s would pull the mean centroid to a third
    assert with_pads["spectral_centroid_mean_hz"] == pytest.approx(plain["spectral_centroid_mean_hz"], rel=0.03)
    assert with_pads["rms_mean_dbfs"] < plain["rms_mean_dbfs"] - 30  # levels do see the silence


def test_silence_gives_floor_level_and_nan_shape():
    features = _spectral(np.zeros(SR))
    assert features["rms_mean_dbfs"] == -120.0 and features["rms_std_db"] == 0.0
    assert all(math.isnan(features[name]) for name in (*mfcc_names(13), *SHAPE_NAMES))


def test_clip_shorter_than_a_frame():
    features = _spectral(synth_vowel(f0_hz=150.0, duration_s=0.01))
    assert all(math.isfinite(v) for v in features.values())


def test_white_noise_balance():
    features = _spectral(_white())
    assert features["alpha_ratio_db"] == pytest.approx(10 * np.log10(4000 / 950), abs=NOISE_BALANCE_TOLERANCE_DB)
    assert features["spectral_slope_db_per_khz"] == pytest.approx(0.0, abs=SLOPE_TOLERANCE_DB_PER_KHZ)


@pytest.mark.parametrize("slope_db_per_khz", [-6.0, -2.0, 3.0])
def test_slope_of_noise_shaped_linearly_in_db(slope_db_per_khz):
    spectrum = np.fft.rfft(_white(seed=1))
    freqs_khz = np.fft.rfftfreq(2 * SR, 1 / SR) / 1000
    y = np.fft.irfft(spectrum * 10 ** (slope_db_per_khz * freqs_khz / 20), n=2 * SR)
    measured = _spectral(y)["spectral_slope_db_per_khz"]
    assert measured == pytest.approx(slope_db_per_khz, abs=SLOPE_TOLERANCE_DB_PER_KHZ)


@pytest.mark.parametrize(("low_amplitude", "high_amplitude"), [(0.5, 0.05), (0.2, 0.2), (0.05, 0.3)])
def test_two_tones_give_exact_hammarberg_and_alpha(low_amplitude, high_amplitude):
    y = low_amplitude * np.sin(2 * np.pi * 500 * T) + high_amplitude * np.sin(2 * np.pi * 3000 * T)
    features = _spectral(y)
    ratio_db = 20 * np.log10(low_amplitude / high_amplitude)
    assert features["hammarberg_index_db"] == pytest.approx(ratio_db, abs=TONE_BALANCE_TOLERANCE_DB)
    assert features["alpha_ratio_db"] == pytest.approx(-ratio_db, abs=TONE_BALANCE_TOLERANCE_DB)


def test_mfcc1_delta_follows_a_known_level_change():
    t = np.arange(4 * SR) / SR
    noise = _white(4.0)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)  # 3 Hz tremolo, 20 dB deep
    steady, tremolo = _spectral(noise), _spectral(noise * envelope)
    # every mel band follows the envelope's level, so mfcc1 (sqrt(40) x mean band dB) changes per
    # 10 ms frame by sqrt(40) x the level's slope; the 50 ms frames smooth the trough (measured -14 %)
    frames = np.arange(0, 4, 0.01)
    level_db = 20 * np.log10(0.55 + 0.45 * np.sin(2 * np.pi * 3 * frames))
    expected = np.sqrt(40) * np.std(np.gradient(level_db))
    assert tremolo["mfcc1_delta_std"] == pytest.approx(expected, rel=0.2)
    assert steady["mfcc1_delta_std"] < 0.1 * expected
