"""F0 modulation: vibrato is found at its rate, a steady voice has little, too few cycles give NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.modulation import CONTOUR_RATE_HZ, F0_MODULATION_NAMES, WELCH_SEGMENT, cycle_periods, f0_modulation
from features.synth import synth_vowel
from features.voice import F0_MAX_HZ, F0_MIN_HZ, analyse_pitch, voice_features

SR = 16_000
PEAK_TOLERANCE_HZ = CONTOUR_RATE_HZ / WELCH_SEGMENT  # one Welch bin (0.78 Hz)
RANGE = {"f0_min_hz": F0_MIN_HZ, "f0_max_hz": F0_MAX_HZ}


def _pulses(*, f0_hz: float, duration_s: float, vibrato_hz: float = 0.0, vibrato_st: float = 0.0, jitter: float = 0.0) -> np.ndarray:
    """Pulse times of a train whose F0 follows a sine in semitones, with Gaussian period noise."""
    rng = np.random.default_rng(0)
    times = [0.0]
    while times[-1] < duration_s:
        semitones = vibrato_st * np.sin(2 * np.pi * vibrato_hz * times[-1])
        times.append(times[-1] + 2 ** (-semitones / 12) / f0_hz * (1 + jitter * rng.standard_normal()))
    return np.array(times)


def _vowel_modulation(**vibrato: float) -> dict[str, float]:
    y = synth_vowel(f0_hz=150.0, duration_s=3.0, jitter=0.005, hnr_db=25.0, **vibrato)
    features = voice_features(analyse_pitch(y, sr=SR))
    return {name: features[name] for name in F0_MODULATION_NAMES}


def test_vibrato_of_a_synthetic_vowel_is_found_at_its_rate():
    steady, vibrato = _vowel_modulation(), _vowel_modulation(vibrato_hz=5.0, vibrato_st=0.5)
    assert vibrato["f0_tremor_freq"] == pytest.approx(5.0, abs=PEAK_TOLERANCE_HZ)
    assert vibrato["f0_mod_4_8"] > steady["f0_mod_4_8"] + 2  # a hundred times the power
    assert vibrato["f0_mod_rel_4_15"] > 0.9 and vibrato["f0_tremor_peak"] > steady["f0_tremor_peak"] + 2
    assert vibrato["f0_hp_std"] > 4 * steady["f0_hp_std"]


@pytest.mark.parametrize("rate_hz", [3.0, 5.0, 10.0])
def test_vibrato_rate_of_a_pulse_train(rate_hz):
    values = f0_modulation(_pulses(f0_hz=120.0, duration_s=4.0, vibrato_hz=rate_hz, vibrato_st=0.3, jitter=0.003), **RANGE)
    assert values["f0_tremor_freq"] == pytest.approx(rate_hz, abs=PEAK_TOLERANCE_HZ)
    band = next(name for name, (lo, hi) in zip(F0_MODULATION_NAMES, ((2, 4), (4, 8), (8, 15))) if lo <= rate_hz < hi)
    assert values[band] == max(values[name] for name in F0_MODULATION_NAMES[:3])


def test_a_steady_voice_has_low_modulation_power():
    values = f0_modulation(_pulses(f0_hz=150.0, duration_s=3.0, jitter=0.005), **RANGE)
    assert all(values[name] < -3 for name in F0_MODULATION_NAMES[:3])
    assert values["f0_hp_std"] < 0.1  # semitones
    exact = f0_modulation(_pulses(f0_hz=150.0, duration_s=3.0), **RANGE)
    assert all(exact[name] < -10 for name in F0_MODULATION_NAMES[:3]) and exact["f0_hp_std"] < 1e-6


@pytest.mark.parametrize("duration_s", [0.0, 0.01, 0.5, 0.9])
def test_too_few_cycles_give_nan(duration_s):
    pulses = _pulses(f0_hz=150.0, duration_s=duration_s, vibrato_hz=5.0, vibrato_st=0.5)
    values = f0_modulation(pulses, **RANGE)
    assert tuple(values) == F0_MODULATION_NAMES and all(math.isnan(v) for v in values.values())


def test_cycles_outside_the_pitch_range_or_unlike_both_neighbours_are_dropped():
    # a 170 ms gap, a 0.5 ms jump, then 9.5 ms and 20 ms periods, each unlike both neighbours
    pulses = np.array([0.0, 0.01, 0.02, 0.03, 0.2, 0.21, 0.22, 0.2205, 0.23, 0.25])
    periods, mid = cycle_periods(pulses, **RANGE)
    assert np.allclose(periods, 0.01) and np.allclose(mid, [0.005, 0.015, 0.025, 0.205, 0.215])
    assert len(cycle_periods(pulses[:3], **RANGE)[0]) == 0
