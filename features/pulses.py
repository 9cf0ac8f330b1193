"""Glottal pulses and their peak amplitudes, as Praat finds them: ``Sound & Pitch: To PointProcess (cc)``
and ``Sound & PointProcess: To AmplitudeTier (period)``.

A transcription of Praat 6.1's ``Sound_Pitch_to_PointProcess_cc`` (``Pitch_to_PointProcess.cpp``): for
each voiced stretch of the pitch track, the first pulse is the sample of largest absolute value within
half a period of the stretch's middle; from there, each next pulse (backwards, then forwards) is where a
one-period window best correlates with the window around the last pulse, searched 0.8-1.25 periods
away and refined by a parabola through the correlation, kept when the correlation exceeds 0.3 and the
window's peak 1 % of the clip's; at the stretch's edges a pulse must correlate above 0.7 with a peak
over 2.3 % of the clip's. The period is the pitch track's F0, linearly interpolated between voiced
frames. Each pulse's amplitude (``PointProcess_Sound_to_AmplitudeTier_period``) is the RMS of the
sound under a Hann window reaching a fifth of the period to either side, for pulses whose neighbouring
periods lie within the period floor and ceiling and differ by at most the maximum period factor.

Agreement with Praat (parselmouth) on the VOICED recordings is tested in ``tests/features/test_pulses.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from features.pitch import Pitch

STRETCH_CORRELATION = 0.3
STRETCH_PEAK_SHARE = 0.01
EDGE_CORRELATION = 0.7
EDGE_PEAK_SHARE = 0.023333
MIN_PERIODS = 0.8  # the next pulse is searched 0.8-1.25 periods away
MAX_PERIODS = 1.25
PEAK_WINDOW_SHARE = 0.2  # the amplitude window reaches this share of each neighbouring period


@njit(cache=True, error_model="numpy")
def _f0_at(t: float, f0: np.ndarray, t1: float, dt: float, xmax: float) -> float:
    """Praat's ``Pitch_getValueAtTime`` (Hertz, linear): NaN outside the clip or where the nearest frame is unvoiced."""
    if t < 0.0 or t > xmax:
        return math.nan
    index = (t - t1) / dt + 1.0
    left = math.floor(index)
    phase = index - left
    if phase < 0.5:
        near, far = left, left + 1
    else:
        near, far = left + 1, left
        phase = 1.0 - phase
    if near < 1 or near > len(f0) or f0[near - 1] <= 0.0:
        return math.nan
    if far < 1 or far > len(f0) or f0[far - 1] <= 0.0:
        return f0[near - 1]
    return f0[near - 1] + phase * (f0[far - 1] - f0[near - 1])


@njit(cache=True, error_model="numpy")
def _find_extremum(y: np.ndarray, dx: float, tmin: float, tmax: float) -> float:
    """Praat's ``Sound_findExtremum`` (maxima and minima): time of the largest absolute sample in
    ``[tmin, tmax]``, parabolically interpolated."""
    x1 = 0.5 * dx
    imin = max(int(math.floor((tmin - x1) / dx + 1.0)), 1)
    imax = min(int(math.ceil((tmax - x1) / dx + 1.0)), len(y))
    n = imax - imin + 1
    if n <= 0:
        return 0.5 * (tmin + tmax)
    if n == 1:
        position = 1.0
    elif n == 2:
        a, b = abs(y[imin - 1]), abs(y[imin])
        position = 1.0 if a > b else (2.0 if a < b else 1.5)
    else:
        lowest = highest = y[imin - 1]
        i_low = i_high = 1
        for i in range(2, n + 1):
            value = y[imin + i - 2]
            if value < lowest:
                lowest, i_low = value, i
            if value > highest:
                highest, i_high = value, i
        if lowest == highest:
            position = 0.5 * (n + 1.0)
        else:
            extremum = i_low if abs(lowest) > abs(highest) else i_high
            if extremum == 1 or extremum == n:
                position = float(extremum)
            else:
                mid, lo, hi = y[imin + extremum - 2], y[imin + extremum - 3], y[imin + extremum - 1]
                position = extremum + 0.5 * (hi - lo) / (2.0 * mid - lo - hi)
    return x1 + (imin - 1 + position - 1) * dx


@njit(cache=True, fastmath=True, error_model="numpy")
def _sums(y: np.ndarray, a: int, b: int, n: int) -> tuple[float, float, float]:
    """Sums over ``n`` samples from 0-based ``a`` and ``b`` of y[a]^2, y[b]^2 and y[a] y[b]."""
    norm1 = norm2 = product = 0.0
    for k in range(n):
        u, v = y[a + k], y[b + k]
        norm1 += u * u
        norm2 += v * v
        product += u * v
    return norm1, norm2, product


@njit(cache=True, fastmath=True, error_model="numpy")
def _correlations(y: np.ndarray, a: int, b: int, width: int, out: np.ndarray) -> None:
    """Normalised correlation of ``y[a:a + width]`` with ``y[b + j:b + j + width]`` for each ``j`` of ``out``
    (0 where the product is 0). The shifts run in the inner loop over local slices, so it vectorises."""
    n = len(out)
    x = y[a : a + width]
    segment = y[b : b + width + n]
    product = np.zeros(n)
    norm1 = 0.0
    for k in range(width):
        u = x[k]
        norm1 += u * u
        row = segment[k : k + n]
        for j in range(n):
            product[j] += u * row[j]
    squares = np.empty(width + n)
    squares[0] = 0.0
    for k in range(width + n - 1):
        squares[k + 1] = squares[k] + segment[k] * segment[k]
    for j in range(n):
        out[j] = product[j] / math.sqrt(norm1 * (squares[j + width] - squares[j])) if product[j] != 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _maximum_correlation(
    y: np.ndarray, dx: float, t1: float, window_s: float, tmin2: float, tmax2: float
) -> tuple[float, float, float]:
    """Praat's ``Sound_findMaximumCorrelation``: (correlation, time, window peak) of the window of
    ``window_s`` whose centre in ``[tmin2, tmax2]`` best matches the one centred on ``t1``."""
    x1 = 0.5 * dx
    nx = len(y)
    half = 0.5 * window_s
    ileft1 = int(math.floor((t1 - half - x1) / dx + 1.0 + 0.5))
    iright1 = int(math.floor((t1 + half - x1) / dx + 1.0 + 0.5))
    ileft2min = int(math.floor((tmin2 - half - x1) / dx + 1.0))
    ileft2max = int(math.ceil((tmax2 - half - x1) / dx + 1.0))
    n_shifts = ileft2max - ileft2min + 1
    correlation = np.zeros(max(n_shifts, 0))
    width = iright1 - ileft1 + 1
    if ileft1 >= 1 and iright1 <= nx and ileft2min >= 1 and ileft2max + width - 1 <= nx and n_shifts > 0:
        _correlations(y, ileft1 - 1, ileft2min - 1, width, correlation)
    else:  # near the clip's edges Praat sums only the sample pairs that lie inside it
        for j in range(n_shifts):
            shift = ileft2min + j - ileft1
            first = max(ileft1, 1, 1 - shift)
            last = min(iright1, nx, nx - shift)
            if last >= first:
                norm1, norm2, product = _sums(y, first - 1, first - 1 + shift, last - first + 1)
                if product != 0.0:
                    correlation[j] = product / math.sqrt(norm1 * norm2)
    best = -1.0
    r1 = r2 = r3 = 0.0
    r1_best = r3_best = ir = 0.0
    best_step = 0
    for j in range(n_shifts):
        r1, r2, r3 = r2, r3, correlation[j]
        if r2 > best and r2 >= r1 and r2 >= r3:
            r1_best, best, r3_best = r1, r2, r3
            ir = ileft2min + j - 1.0
            best_step = j
    if best == -1.0:
        return best, t1, 0.0
    # Praat reports the peak of the window one step past the best (the one it had just correlated)
    shift = ileft2min + best_step - ileft1
    peak = 0.0
    for i in range(max(ileft1, 1, 1 - shift) - 1 + shift, min(iright1, nx, nx - shift) + shift):
        peak = max(peak, abs(y[i]))
    d2r = 2.0 * best - r1_best - r3_best
    if d2r != 0.0:
        dr = 0.5 * (r3_best - r1_best)
        best += 0.5 * dr * dr / d2r
        ir += dr / d2r
    return best, t1 + (ir - ileft1) * dx, peak


@njit(cache=True, error_model="numpy")
def _voiced_interval_after(after: float, f0: np.ndarray, t1: float, dt: float, xmax: float) -> tuple[bool, float, float]:
    """Praat's ``Pitch_getVoicedIntervalAfter``: the next voiced stretch (whole frames) from ``after`` on."""
    n = len(f0)
    ileft = max(int(math.ceil((after - t1) / dt + 1.0)), 1)
    if ileft > n:
        return False, 0.0, 0.0
    while ileft <= n and f0[ileft - 1] <= 0.0:
        ileft += 1
    if ileft > n:
        return False, 0.0, 0.0
    iright = ileft
    while iright <= n and f0[iright - 1] > 0.0:
        iright += 1
    iright -= 1
    tleft = t1 + (ileft - 1) * dt - 0.5 * dt
    tright = t1 + (iright - 1) * dt + 0.5 * dt
    if tleft >= xmax - 0.5 * dt:
        return False, 0.0, 0.0
    tleft = max(tleft, 0.0)
    tright = min(tright, xmax)
    if tright <= after:
        return False, 0.0, 0.0
    return True, tleft, tright


@njit(cache=True, error_model="numpy")
def _pulses(y: np.ndarray, dx: float, f0: np.ndarray, t1: float, dt: float) -> np.ndarray:
    """Praat's ``Sound_Pitch_to_PointProcess_cc`` on samples ``dx`` apart and a pitch track (F0 per frame,
    0 where unvoiced, first frame at ``t1``, ``dt`` apart): sorted pulse times in seconds."""
    xmax = len(y) * dx
    global_peak = 0.0
    for value in y:
        global_peak = max(global_peak, abs(value))
    points = []
    t = 0.0
    added_right = -1e308
    while True:
        found, tleft, tright = _voiced_interval_after(t, f0, t1, dt, xmax)
        if not found:
            break
        tmiddle = 0.5 * (tleft + tright)
        f0_middle = _f0_at(tmiddle, f0, t1, dt, xmax)
        tmax = _find_extremum(y, dx, tmiddle - 0.5 / f0_middle, tmiddle + 0.5 / f0_middle)
        points.append(tmax)
        tsave = tmax
        while True:  # backwards
            period_f0 = _f0_at(tmax, f0, t1, dt, xmax)
            if math.isnan(period_f0):
                break
            correlation, tmax, peak = _maximum_correlation(
                y, dx, tmax, 1.0 / period_f0, tmax - MAX_PERIODS / period_f0, tmax - MIN_PERIODS / period_f0
            )
            if correlation == -1.0:
                tmax -= 1.0 / period_f0
            if tmax < tleft:
                if correlation > EDGE_CORRELATION and peak > EDGE_PEAK_SHARE * global_peak and tmax - added_right > MIN_PERIODS / period_f0:
                    points.append(tmax)
                break
            if correlation > STRETCH_CORRELATION and (peak == 0.0 or peak > STRETCH_PEAK_SHARE * global_peak):
                if tmax - added_right > MIN_PERIODS / period_f0:
                    points.append(tmax)
        tmax = tsave
        while True:  # forwards
            period_f0 = _f0_at(tmax, f0, t1, dt, xmax)
            if math.isnan(period_f0):
                break
            correlation, tmax, peak = _maximum_correlation(
                y, dx, tmax, 1.0 / period_f0, tmax + MIN_PERIODS / period_f0, tmax + MAX_PERIODS / period_f0
            )
            if correlation == -1.0:
                tmax += 1.0 / period_f0
            if tmax > tright:
                if correlation > EDGE_CORRELATION and peak > EDGE_PEAK_SHARE * global_peak:
                    points.append(tmax)
                    added_right = tmax
                break
            if correlation > STRETCH_CORRELATION and (peak == 0.0 or peak > STRETCH_PEAK_SHARE * global_peak):
                points.append(tmax)
                added_right = tmax
        t = tright
    return np.unique(np.array(points, dtype=np.float64))


def pulse_times(y: np.ndarray, pitch: Pitch, *, sr: int) -> np.ndarray:
    """Glottal pulses of a clip, as Praat's ``To PointProcess (cc)``.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples (the ones ``pitch`` was computed from).
    pitch : Pitch
        Its autocorrelation pitch track (:func:`features.pitch.to_pitch_ac`).
    sr : int
        Sample rate of ``y``.

    Returns
    -------
    np.ndarray, shape (p,)
        Increasing pulse times in seconds; empty when no frame is voiced.
    """
    if not (pitch.f0_hz > 0).any():
        return np.empty(0)
    return _pulses(np.asarray(y, dtype=np.float64), 1.0 / sr, pitch.f0_hz, pitch.t1, pitch.dt)


@njit(cache=True, error_model="numpy")
def _period_peaks(
    y: np.ndarray, dx: float, times: np.ndarray, period_floor: float, period_ceiling: float, max_factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Praat's ``PointProcess_Sound_to_AmplitudeTier_period``: times and Hann-windowed RMS of the pulses that count."""
    x1 = 0.5 * dx
    keep_t = np.empty(len(times))
    keep_a = np.empty(len(times))
    n = 0
    for i in range(1, len(times) - 1):
        p1, p2 = times[i] - times[i - 1], times[i + 1] - times[i]
        factor = p1 / p2 if p1 > p2 else p2 / p1
        if not (period_floor <= p1 <= period_ceiling and period_floor <= p2 <= period_ceiling and factor <= max_factor):
            continue
        left, right = PEAK_WINDOW_SHARE * p1, PEAK_WINDOW_SHARE * p2
        imin = max(1 + int(math.ceil((times[i] - left - x1) / dx)), 1)
        imax = min(1 + int(math.floor((times[i] + right - x1) / dx)), len(y))
        if imax - imin + 1 < 3:
            continue
        sum_squares = window_squares = 0.0
        for k in range(imin, imax + 1):
            t = x1 + (k - 1) * dx
            width = left if t < times[i] else right
            window = 0.5 + 0.5 * math.cos(math.pi * (t - times[i]) / width)
            value = y[k - 1] * window
            sum_squares += value * value
            window_squares += window * window
        peak = math.sqrt(sum_squares / window_squares)
        if peak > 0.0:
            keep_t[n], keep_a[n] = times[i], peak
            n += 1
    return keep_t[:n], keep_a[:n]


def period_peaks(
    y: np.ndarray, times: np.ndarray, *, sr: int, period_floor_s: float, period_ceiling_s: float, max_period_factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pulse peak amplitudes, as Praat's ``To AmplitudeTier (period)`` over the whole clip.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples.
    times : np.ndarray, shape (p,)
        Increasing pulse times in seconds (:func:`pulse_times`).
    sr : int
        Sample rate of ``y``.
    period_floor_s, period_ceiling_s, max_period_factor : float
        A pulse counts when both its neighbouring periods lie in the range and differ by at most the factor.

    Returns
    -------
    tuple of np.ndarray, shapes (a,) and (a,)
        Times and Hann-windowed RMS amplitudes of the pulses that count; empty with fewer than three pulses.
    """
    if len(times) < 3:
        return np.empty(0), np.empty(0)
    return _period_peaks(
        np.asarray(y, dtype=np.float64), 1.0 / sr, np.asarray(times, dtype=np.float64),
        period_floor_s, period_ceiling_s, max_period_factor,
    )
