"""features.pulses, and the voice features built on it, against Praat's own commands (parselmouth).

Measured on all 208 VOICED records: from Praat's pitch track, ``pulse_times`` finds the same pulses
as ``To PointProcess (cc)`` (times equal to 3e-17 s) and ``period_peaks`` the same amplitudes as
``To AmplitudeTier (period)`` (relative 7e-16); end to end (our pitch, pulses and peaks against
Praat's), jitter and shimmer agree to 2e-13 relative and F0 mean to 2.5e-8; HNR, which reads the
pitch track's strengths (autocorrelation by a float32 FFT), to 3e-6 dB in the median record, 1.8e-5 dB
at the 90th percentile, 1.5e-4 dB at worst. The tolerances leave room for rounding across library
versions and stay far below clinical resolution (jitter and shimmer are read to two significant
digits, HNR to 0.1 dB):

- pulse times within 1e-9 s, same count; amplitudes within 1e-9 relative;
- per record, jitter and shimmer relative error: median <= 1e-9, 90th percentile <= 1e-6;
- per record, HNR error: median <= 1e-5 dB, 90th percentile <= 1e-4 dB.
"""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
from parselmouth.praat import call

from features.perturbation import MAX_AMPLITUDE_FACTOR, MAX_PERIOD_FACTOR, PERIOD_CEILING_S, PERIOD_FLOOR_S
from features.pitch import Pitch
from features.pulses import period_peaks, pulse_times
from features.synth import synth_vowel
from features.voice import analyse_pitch, voice_features

SR = 16_000
PULSE_TIME_S = 1e-9
AMPLITUDE_REL = 1e-9
PERTURBATION_MEDIAN_REL = 1e-9
PERTURBATION_P90_REL = 1e-6
HNR_MEDIAN_DB = 1e-5
HNR_P90_DB = 1e-4
PERIODS = (PERIOD_FLOOR_S, PERIOD_CEILING_S, MAX_PERIOD_FACTOR)
JITTERS = {"jitter_local": "local", "jitter_local_abs_us": "local, absolute", "jitter_rap": "rap", "jitter_ppq5": "ppq5"}
SHIMMERS = {
    "shimmer_local": "local",
    "shimmer_local_db": "local_dB",
    "shimmer_apq3": "apq3",
    "shimmer_apq5": "apq5",
    "shimmer_apq11": "apq11",
}


def _praat_pulses(y: np.ndarray) -> tuple[parselmouth.Sound, parselmouth.Pitch, parselmouth.Data, np.ndarray]:
    sound = parselmouth.Sound(y.astype(np.float64), sampling_frequency=SR)
    pitch = sound.to_pitch_ac(pitch_floor=60.0, pitch_ceiling=600.0)
    points = call([sound, pitch], "To PointProcess (cc)")
    n = call(points, "Get number of points")
    return sound, pitch, points, (call(points, "To Matrix").values[0] if n else np.empty(0))


def _as_pitch(pitch: parselmouth.Pitch) -> Pitch:
    frames = pitch.selected_array
    return Pitch(pitch.xs(), frames["frequency"], frames["strength"], pitch.x1, pitch.dx, pitch.ceiling)


def _peaks(y: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return period_peaks(
        y, times, sr=SR, period_floor_s=PERIOD_FLOOR_S, period_ceiling_s=PERIOD_CEILING_S, max_period_factor=MAX_PERIOD_FACTOR
    )


def _relative(mine: float, praat: float) -> float:
    if math.isnan(mine) and math.isnan(praat):
        return 0.0
    return abs(mine / praat - 1.0)


def test_pulses_and_peaks_of_voiced_records_are_praats(voiced_dir):
    from features.audio import decode_audio

    for header in sorted(voiced_dir.glob("voice*.hea"))[::8]:
        y = decode_audio(header).samples
        sound, pitch, points, praat_times = _praat_pulses(y)
        times = pulse_times(y, _as_pitch(pitch), sr=SR)
        assert len(times) == len(praat_times), header.name
        np.testing.assert_allclose(times, praat_times, rtol=0, atol=PULSE_TIME_S)
        tier = call([sound, points], "To AmplitudeTier (period)", 0, 0, *PERIODS)
        table = call(call(tier, "Down to TableOfReal"), "To Matrix").values
        peak_times, amplitudes = _peaks(y, praat_times)
        np.testing.assert_allclose(peak_times, table[:, 0], rtol=0, atol=PULSE_TIME_S)
        np.testing.assert_allclose(amplitudes, table[:, 1], rtol=AMPLITUDE_REL)


def test_voice_features_of_voiced_records_agree_with_praat(voiced_dir):
    from features.audio import decode_audio

    errors: dict[str, list[float]] = {}
    for header in sorted(voiced_dir.glob("voice*.hea"))[::4]:
        y = decode_audio(header).samples
        mine = voice_features(analyse_pitch(y, sr=SR))
        sound, pitch, points, _ = _praat_pulses(y)
        praat = {name: call(points, f"Get jitter ({kind})", 0, 0, *PERIODS) for name, kind in JITTERS.items()}
        praat["jitter_local_abs_us"] *= 1e6
        praat.update(
            {
                name: call([sound, points], f"Get shimmer ({kind})", 0, 0, *PERIODS, MAX_AMPLITUDE_FACTOR)
                for name, kind in SHIMMERS.items()
            }
        )
        for name, value in praat.items():
            errors.setdefault(name, []).append(_relative(mine[name], value))
        frames = pitch.selected_array
        r = np.clip(frames["strength"][frames["frequency"] > 0], 1e-15, 1 - 1e-15)
        errors.setdefault("hnr_mean_db", []).append(abs(mine["hnr_mean_db"] - np.mean(10 * np.log10(r / (1 - r)))))
    for name, values in errors.items():
        median, p90 = np.median(values), np.percentile(values, 90)
        if name == "hnr_mean_db":
            assert median <= HNR_MEDIAN_DB and p90 <= HNR_P90_DB, (name, median, p90)
        else:
            assert median <= PERTURBATION_MEDIAN_REL and p90 <= PERTURBATION_P90_REL, (name, median, p90)


@pytest.mark.parametrize("f0", [100.0, 220.0])
def test_synthetic_vowel_pulses_are_praats(f0):
    y = synth_vowel(f0_hz=f0, duration_s=1.5, jitter=0.02, shimmer=0.05, hnr_db=20.0)
    _, pitch, _, praat_times = _praat_pulses(y)
    np.testing.assert_allclose(pulse_times(y, _as_pitch(pitch), sr=SR), praat_times, rtol=0, atol=PULSE_TIME_S)


def test_pulses_at_the_clip_edges_are_praats():
    # voiced up to both ends: the correlation windows run off the clip, where Praat sums only what is inside
    y = synth_vowel(f0_hz=130.0, duration_s=0.4, hnr_db=30.0)
    _, pitch, _, praat_times = _praat_pulses(y)
    np.testing.assert_allclose(pulse_times(y, _as_pitch(pitch), sr=SR), praat_times, rtol=0, atol=PULSE_TIME_S)


def test_unvoiced_track_has_no_pulses():
    y = np.zeros(SR)
    _, pitch, _, praat_times = _praat_pulses(y)
    assert len(praat_times) == 0 and len(pulse_times(y, _as_pitch(pitch), sr=SR)) == 0
