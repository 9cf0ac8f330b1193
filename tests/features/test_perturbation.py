"""Jitter and shimmer against Praat itself: random pulse trains (property-based) and VOICED records."""

from __future__ import annotations

import math

import numpy as np
import parselmouth
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parselmouth.praat import call

from features.perturbation import JITTER_NAMES, SHIMMER_NAMES, jitter, shimmer

# Same definitions, same double arithmetic; only the summation order differs (Praat accumulates in
# long double). Measured: <= 7e-16 relative on VOICED. A real definitional slip (one window more or
# less, another denominator) moves the result by far more than 1e-9.
PARITY_REL = 1e-9
PRAAT_ARGS = (0.0001, 0.02, 1.3)  # Praat's standard period floor, ceiling and maximum period factor
AMPLITUDE_FACTOR = 1.6
PRAAT_JITTERS = {
    "jitter_local": "local",
    "jitter_local_abs_us": "local, absolute",
    "jitter_rap": "rap",
    "jitter_ppq5": "ppq5",
    "jitter_ddp": "ddp",
}
PRAAT_SHIMMERS = {
    "shimmer_local": "local",
    "shimmer_local_db": "local_dB",
    "shimmer_apq3": "apq3",
    "shimmer_apq5": "apq5",
    "shimmer_apq11": "apq11",
    "shimmer_dda": "dda",
}


def _praat_jitter(times: np.ndarray) -> dict[str, float]:
    points = call("Create empty PointProcess", "pulses", 0.0, float(times[-1]) + 1.0)
    for t in times:
        call(points, "Add point", float(t))
    out = {name: call(points, f"Get jitter ({kind})", 0, 0, *PRAAT_ARGS) for name, kind in PRAAT_JITTERS.items()}
    out["jitter_local_abs_us"] *= 1e6
    return out


def _praat_shimmer(times: np.ndarray, amplitudes: np.ndarray) -> dict[str, float]:
    tier = call("Create AmplitudeTier", "peaks", 0.0, float(times[-1]) + 1.0)
    for t, a in zip(times, amplitudes):
        call(tier, "Add point", float(t), float(a))
    floor, ceiling, _ = PRAAT_ARGS
    return {
        name: call(tier, f"Get shimmer ({kind})", floor, ceiling, AMPLITUDE_FACTOR)
        for name, kind in PRAAT_SHIMMERS.items()
    }


def _assert_same(mine: dict[str, float], praat: dict[str, float]) -> None:
    for name, expected in praat.items():
        if math.isnan(expected):
            assert math.isnan(mine[name]), name
        else:
            assert mine[name] == pytest.approx(expected, rel=PARITY_REL, abs=1e-15), name


# Periods from 2 to 25 ms (some outside Praat's 0.1-20 ms range) with jumps up to x1.6 (some above
# its factor 1.3), so that the window rules are exercised, not just the arithmetic.
periods = st.lists(st.floats(0.002, 0.025), min_size=0, max_size=40)
amplitudes = st.floats(0.05, 1.0)


@settings(max_examples=60, deadline=None)
@given(periods)
def test_jitter_matches_praat_on_random_pulse_trains(periods):
    times = 0.1 + np.cumsum([0.0, *periods])
    _assert_same(jitter(times), _praat_jitter(times))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.002, 0.025), amplitudes), min_size=1, max_size=40))
def test_shimmer_matches_praat_on_random_peaks(pairs):
    gaps, values = zip(*pairs)
    times = 0.1 + np.cumsum([0.0, *gaps[1:]])
    _assert_same(shimmer(times, np.array(values)), _praat_shimmer(times, np.array(values)))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0025, 0.0125), st.integers(2, 60), st.floats(0.1, 10.0))
def test_a_perfectly_regular_voice_has_no_perturbation(period, n, gain):
    times = np.arange(n + 1) * period
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in jitter(times).values() if not math.isnan(v))
    values = shimmer(times, np.full(n + 1, gain))
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in values.values() if not math.isnan(v))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.004, 0.006), min_size=12, max_size=30), st.floats(0.5, 2.0))
def test_relative_measures_ignore_scale(periods, scale):
    times = np.cumsum([0.0, *periods])
    base, scaled = jitter(times), jitter(times * scale)
    if 0.004 * scale >= 0.0001 and 0.006 * scale <= 0.02:
        for name in ("jitter_local", "jitter_rap", "jitter_ppq5"):
            assert scaled[name] == pytest.approx(base[name], rel=1e-9, nan_ok=True), name
        assert scaled["jitter_local_abs_us"] == pytest.approx(scale * base["jitter_local_abs_us"], rel=1e-9, nan_ok=True)
    amplitudes = 0.5 + 0.05 * np.sin(np.arange(len(times)))
    louder = shimmer(times, scale * amplitudes)
    for name, value in shimmer(times, amplitudes).items():
        assert louder[name] == pytest.approx(value, rel=1e-9, nan_ok=True), name


def test_hand_computed_values():
    times = np.cumsum([0.0, 0.010, 0.011, 0.010, 0.012])
    values = jitter(times)
    # |0.010-0.011|, |0.011-0.010|, |0.010-0.012| = 1, 1, 2 ms; mean period 10.75 ms
    assert values["jitter_local_abs_us"] == pytest.approx(4000 / 3)
    assert values["jitter_local"] == pytest.approx((0.004 / 3) / 0.01075)
    assert math.isnan(values["jitter_ppq5"])  # four periods: no window of five
    peaks = shimmer(np.arange(4) * 0.01, np.array([1.0, 0.8, 1.0, 0.8]))
    assert peaks["shimmer_local"] == pytest.approx(0.2 / (2.8 / 3))  # mean of all peaks but the last
    assert peaks["shimmer_local_db"] == pytest.approx(20 * np.log10(1 / 0.8))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_pulses_are_nan(n):
    times = np.arange(n) * 0.005
    assert all(math.isnan(v) for v in jitter(times).values())  # two periods needed at least
    peaks = shimmer(times, np.ones(n))
    local = ("shimmer_local", "shimmer_local_db")
    assert all(math.isnan(v) for name, v in peaks.items() if n < 2 or name not in local)
    assert all(peaks[name] == 0.0 for name in local if n == 2)


def test_voiced_records_match_praat_commands(voiced_dir):
    from features.audio import decode_audio

    for header in sorted(voiced_dir.glob("voice*.hea"))[::20]:
        sound = parselmouth.Sound(decode_audio(header).samples.astype(np.float64), sampling_frequency=16_000)
        pitch = sound.to_pitch_ac(pitch_floor=60.0, pitch_ceiling=600.0)
        points = call([sound, pitch], "To PointProcess (cc)")
        times = call(points, "To Matrix").values[0]
        peaks = call(call([sound, points], "To AmplitudeTier (period)", 0, 0, *PRAAT_ARGS), "Down to TableOfReal")
        table = call(peaks, "To Matrix").values
        praat = {name: call(points, f"Get jitter ({kind})", 0, 0, *PRAAT_ARGS) for name, kind in PRAAT_JITTERS.items()}
        praat["jitter_local_abs_us"] *= 1e6
        praat.update(
            {
                name: call([sound, points], f"Get shimmer ({kind})", 0, 0, *PRAAT_ARGS, AMPLITUDE_FACTOR)
                for name, kind in PRAAT_SHIMMERS.items()
            }
        )
        mine = {**jitter(times), **shimmer(table[:, 0], table[:, 1])}
        assert set(mine) == {*JITTER_NAMES, *SHIMMER_NAMES}
        _assert_same(mine, praat)
