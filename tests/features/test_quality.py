"""quality_gate: each refusal with its reason, soft flags for clips that pass, and real VOICED records."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from features.audio import Audio, decode_audio
from features.quality import quality_gate
from features.synth import synth_vowel
from tests.features.conftest import mono_audio
from voxflow.errors import QualityError

DEFAULTS = dict(min_duration_s=0.5, max_duration_s=120.0, silence_dbfs=-60.0, clipping_fraction=0.01)
SR = 16_000


def _scaled_to_dbfs(y: np.ndarray, dbfs: float) -> np.ndarray:
    return y * (10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def test_a_healthy_vowel_passes_without_flags(vowel):
    assert quality_gate(mono_audio(vowel), **DEFAULTS) == ()


def test_nan_in_a_float_wav(tmp_path: Path, vowel):
    vowel[100:103] = [np.nan, np.inf, -np.inf]
    sf.write(tmp_path / "nan.wav", vowel, SR, subtype="FLOAT")
    with pytest.raises(QualityError) as err:
        quality_gate(decode_audio(tmp_path / "nan.wav"), **DEFAULTS)
    assert err.value.reason == "non-finite samples (NaN/inf) in decoded audio: 1 NaN, 2 inf of 48000 samples"


@pytest.mark.parametrize("scale", [8.0, 2.0**15, 2.0**31, 1e30, 1e38])
@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_float_samples_far_beyond_full_scale(tmp_path: Path, scale, rate):
    # ×1e38 was scored (its float32 power spectrum overflowed), ×1e30 failed its chunk in XGBoost, the rest were scored
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, sr=rate, jitter=0.01, shimmer=0.04, hnr_db=25.0)
    sf.write(tmp_path / "hot.wav", scale * y, rate, subtype="FLOAT")
    with pytest.raises(QualityError) as err:
        quality_gate(decode_audio(tmp_path / "hot.wav"), **DEFAULTS)
    assert err.value.reason.startswith("samples beyond full scale: peak ")
    assert err.value.reason.endswith("dBFS, limit 2×); float samples and WFDB physical values must be within ±1")


def test_beyond_full_scale_reason_names_the_peak(vowel):
    with pytest.raises(QualityError) as err:
        quality_gate(mono_audio(8 * vowel), **DEFAULTS)  # peak 0.5 x 8
    assert err.value.reason == "samples beyond full scale: peak 4× (+12.0 dBFS, limit 2×); float samples and WFDB physical values must be within ±1"


def test_a_slightly_hot_float_file_passes(tmp_path: Path):
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, sr=44_100, jitter=0.01, shimmer=0.04, hnr_db=25.0)
    sf.write(tmp_path / "hot.wav", 1.9 / np.abs(y).max() * y, 44_100, subtype="FLOAT")
    assert quality_gate(decode_audio(tmp_path / "hot.wav"), **DEFAULTS) == ()


def test_digital_silence():
    with pytest.raises(QualityError, match="silence: every sample is zero"):
        quality_gate(mono_audio(np.zeros(SR)), **DEFAULTS)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_a_constant_is_silence_not_clipping(tmp_path: Path, rate):
    # was refused as "clipped: 100.0% of samples in flat tops at the peak level"
    sf.write(tmp_path / "dc.wav", np.full(2 * rate, -0.5), rate, subtype="PCM_16")
    with pytest.raises(QualityError) as err:
        quality_gate(decode_audio(tmp_path / "dc.wav"), **DEFAULTS)
    assert err.value.reason == "silence: every sample is -0.5 (a constant DC offset, no sound)"


def test_a_voice_beside_a_constant_channel_is_no_constant(tmp_path: Path, vowel):
    sf.write(tmp_path / "dc.wav", np.column_stack([vowel, np.full(len(vowel), 0.6)]), SR, subtype="PCM_16")
    with pytest.raises(QualityError, match=r"^clipped: "):  # its DC channel is flat, the mix is not constant
        quality_gate(decode_audio(tmp_path / "dc.wav"), **DEFAULTS)


@pytest.mark.parametrize(
    "gain,mix", [(-1.0, "every mixed sample is zero"), (-0.99, r"mix RMS -63\.\d dBFS")], ids=["inverted", "nearly"]
)
def test_a_voice_cancelled_by_its_inverted_channel_is_no_silence(tmp_path: Path, voiced_dir, gain, mix):
    # was refused as "silence: RMS -96.5 dBFS below -60 dBFS", though each channel holds the voice
    x = decode_audio(voiced_dir / "voice001.hea", target_rate=8_000).samples
    sf.write(tmp_path / "anti.wav", np.column_stack([x, gain * x]), 8_000, subtype="PCM_16")
    with pytest.raises(QualityError) as err:
        quality_gate(decode_audio(tmp_path / "anti.wav"), **DEFAULTS)
    assert re.fullmatch(
        rf"channels cancel out when mixed to mono: {mix}, channels at -17\.7 dBFS \(one channel phase-inverted\?\)",
        err.value.reason,
    )


@pytest.mark.parametrize(
    "left,right,reason",
    [
        (None, None, "silence: every sample is zero (digital silence, threshold -60 dBFS)"),
        # the mix 3 dB below channels above the silence level, as averaging leaves them when they do not cancel
        (-58.0, -58.0, "silence: RMS -61.0 dBFS below -60 dBFS"),  # independent noise
        (-55.0, None, "silence: RMS -61.0 dBFS below -60 dBFS"),  # beside a silent channel
    ],
    ids=["zeros", "quiet noise", "one quiet channel"],
)
def test_a_quiet_mix_of_channels_that_do_not_cancel_is_silence(tmp_path: Path, left, right, reason):
    noise = np.random.default_rng(0).standard_normal((2, SR))
    channels = [0 * n if level is None else _scaled_to_dbfs(n, level) for n, level in zip(noise, [left, right])]
    sf.write(tmp_path / "quiet.wav", np.column_stack(channels), SR, subtype="FLOAT")
    with pytest.raises(QualityError) as err:
        quality_gate(decode_audio(tmp_path / "quiet.wav"), **DEFAULTS)
    assert err.value.reason == reason


def test_quiet_noise_is_silence_with_its_level_in_the_reason():
    hiss = _scaled_to_dbfs(np.random.default_rng(0).standard_normal(SR), -70.0)
    with pytest.raises(QualityError) as err:
        quality_gate(mono_audio(hiss), **DEFAULTS)
    assert err.value.reason == "silence: RMS -70.0 dBFS below -60 dBFS"


def test_too_short(vowel):
    with pytest.raises(QualityError) as err:
        quality_gate(mono_audio(vowel[:800]), **DEFAULTS)
    assert err.value.reason == "clip too short: 0.05 s < 0.5 s minimum (VOXFLOW_MIN_DURATION_S)"


def test_too_long(vowel):
    with pytest.raises(QualityError, match=re.escape("clip too long: 3.0 s > 2.0 s maximum (VOXFLOW_MAX_DURATION_S)")):
        quality_gate(mono_audio(vowel), **{**DEFAULTS, "max_duration_s": 2.0})


def test_square_wave_at_half_scale_is_clipped():
    t = np.arange(SR) / SR
    with pytest.raises(QualityError) as err:
        quality_gate(mono_audio(0.5 * np.sign(np.sin(2 * np.pi * 150 * t + 0.1))), **DEFAULTS)
    assert err.value.reason == "clipped: 100.0% of samples in flat tops at the peak level (limit 1.0%)"


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100])
def test_clipped_file_is_refused_after_resampling(tmp_path, rate):
    y = synth_vowel(f0_hz=150.0, duration_s=2.0, sr=rate, jitter=0.01, shimmer=0.04, hnr_db=25.0)
    sf.write(tmp_path / "hot.wav", np.clip(4 * y, -1.0, 1.0), rate, subtype="PCM_16")
    with pytest.raises(QualityError, match=r"clipped: \d+\.\d% of samples in flat tops"):
        quality_gate(decode_audio(tmp_path / "hot.wav"), **DEFAULTS)


def test_quiet_clip_passes_flagged_low_level(vowel):
    assert quality_gate(mono_audio(_scaled_to_dbfs(vowel, -45.0)), **DEFAULTS) == ("low_level",)


def test_a_little_clipping_passes_flagged():
    y = synth_vowel(f0_hz=150.0, duration_s=2.0, jitter=0.01, shimmer=0.04, hnr_db=25.0)
    audio = mono_audio(np.clip(2.3 * y, -1.0, 1.0))  # 0.6 % of samples flat at full scale
    assert quality_gate(audio, **DEFAULTS) == ("some_clipping",)
    with pytest.raises(QualityError, match="clipped"):
        quality_gate(audio, **{**DEFAULTS, "clipping_fraction": 0.005})


def test_gate_uses_the_decoders_measurement_when_present(vowel):
    audio = Audio(samples=vowel, sample_rate=SR, source_rate=44_100, channels=1, duration_s=3.0, clipped_fraction=0.2)
    with pytest.raises(QualityError, match=r"clipped: 20.0%"):
        quality_gate(audio, **DEFAULTS)


def test_every_voiced_record_passes_the_default_gate(voiced_dir):
    for header in sorted(voiced_dir.glob("voice*.hea")):
        flags = quality_gate(decode_audio(header), **DEFAULTS)
        assert flags == (), header.name
