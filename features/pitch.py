"""Praat's autocorrelation pitch tracker (Boersma 1993), ``Sound: To Pitch (ac)`` with its standard settings.

A transcription of Praat 6.1's ``Sound_to_Pitch.cpp`` (``Sound_into_PitchFrame``, ``AC_HANNING``) and
``Pitch_pathFinder``: frames of three floor periods, step a quarter of that (12.5 ms at 60 Hz), placed
symmetrically in the clip; each frame has its local mean removed, a Hann window applied, and its
autocorrelation (by FFT) divided by the window's own; local maxima above half the voicing threshold
are candidates, placed by parabolic interpolation with a depth-30 sinc strength (the strongest
``max(15, ceiling / floor)``, octave cost favouring high frequencies), then refined on a depth-70 sinc
interpolation; a Viterbi path with octave-jump and voiced/unvoiced costs picks one candidate (or
voicelessness) per frame.

Four departures, each for speed and each checked against Praat: the FFT is 1200 points instead of
2048 (lags up to half the window, the only ones read, are the same for any length of at least 1.5
windows) and in float32 (strengths move by at most 3.4e-7, HNR by 1.5e-4 dB, on VOICED); before the path, candidates are refined by two parabolic steps instead of Brent's method,
and only those that can be voiced and are within ``ESTIMATE_MARGIN`` of their frame's best (the rest
cannot change the path), Brent's method then refining the chosen one as Praat does; frames are
processed in cache-sized blocks. Numpy does the framing and FFTs, numba the
candidates, refinement and path.

Agreement with Praat (parselmouth) on the VOICED recordings is tested in ``tests/features/test_pitch.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numba import njit

PERIODS_PER_WINDOW = 3.0
MAX_CANDIDATES = 15
SILENCE_THRESHOLD = 0.03
VOICING_THRESHOLD = 0.45
OCTAVE_COST = 0.01
OCTAVE_JUMP_COST = 0.35
VOICED_UNVOICED_COST = 0.14
INTERPOLATION_DEPTH = 0.5  # lags up to half the window are kept for interpolation
STRENGTH_SINC_DEPTH = 30
REFINE_SINC_DEPTH = 70
FINE_SINC_DEPTH = 700  # Praat refines candidates above 0.3 times the sample rate more finely
BRENT_TOLERANCE = 1e-10
SQRT_EPSILON = math.sqrt(2.0**-52)
# Praat refines every candidate by Brent's method on the depth-70 sinc interpolation; here only the
# chosen one is, after the path. The candidates in the race get two parabolic steps (half, then a
# tenth of a lag) on the same interpolation: within 2.3e-6 in strength of Brent's on VOICED.
ESTIMATE_STEPS = (0.5, 0.1)
BLOCK_FRAMES = 32
# Candidates scoring this far below their frame's best keep their first estimate unless chosen: on the
# 208 VOICED records 0.05 changed one record's path (47 frames an octave off), 0.1 and up none.
ESTIMATE_MARGIN = 0.2


@dataclass(frozen=True)
class Pitch:
    """An autocorrelation pitch track.

    Attributes
    ----------
    times : np.ndarray, shape (t,)
        Frame centres in seconds (``t1 + i * dt``).
    f0_hz : np.ndarray, shape (t,)
        F0 of the chosen candidate, 0 where unvoiced.
    strength : np.ndarray, shape (t,)
        Normalised autocorrelation of the chosen candidate (0 where unvoiced).
    t1, dt : float
        First frame centre and frame step in seconds.
    ceiling_hz : float
        The pitch ceiling the track was computed with.
    """

    times: np.ndarray
    f0_hz: np.ndarray
    strength: np.ndarray
    t1: float
    dt: float
    ceiling_hz: float


@lru_cache(maxsize=8)
def _window(nsamp_window: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Praat's Hann window (``0.5 - 0.5 cos(2 pi i / (n + 1))``, i = 1..n) and its normalised autocorrelation."""
    window = 0.5 - 0.5 * np.cos(np.arange(1, nsamp_window + 1) * 2.0 * np.pi / (nsamp_window + 1))
    spectrum = np.fft.rfft(window, n_fft)
    autocorrelation = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n_fft)
    return window, autocorrelation / autocorrelation[0]


@njit(cache=True, error_model="numpy")
def _sinc(y: np.ndarray, x: float, max_depth: int) -> float:
    """Praat's ``NUM_interpolate_sinc``: ``y`` read at 1-based position ``x`` through a Hann-tapered sinc
    (cosines by rotation rather than one ``cos`` per term, both sides in one loop: the same values to rounding)."""
    size = len(y)
    if x > size:
        return y[size - 1]
    if x < 1:
        return y[0]
    midleft = int(math.floor(x))
    midright = midleft + 1
    if x == midleft:
        return y[midleft - 1]
    max_depth = min(max_depth, midright - 1, size - midleft)
    if max_depth <= 0:
        return y[int(math.floor(x + 0.5)) - 1]
    if max_depth == 1:
        return y[midleft - 1] + (x - midleft) * (y[midright - 1] - y[midleft - 1])
    # the depth terms on either side, summed in one loop: two independent recurrences run in parallel
    a_left = math.pi * (x - midleft)
    a_right = math.pi * (midright - x)
    half_sin_left = 0.5 * math.sin(a_left)
    half_sin_right = 0.5 * math.sin(a_right)
    d_left = math.pi / (x - (midright - max_depth) + 1)
    d_right = math.pi / ((midleft + max_depth) - x + 1)
    cos_left, sin_left = math.cos(a_left * d_left / math.pi), math.sin(a_left * d_left / math.pi)
    cos_right, sin_right = math.cos(a_right * d_right / math.pi), math.sin(a_right * d_right / math.pi)
    cos_dl, sin_dl, cos_dr, sin_dr = math.cos(d_left), math.sin(d_left), math.cos(d_right), math.sin(d_right)
    left_sum = right_sum = 0.0
    for k in range(max_depth):
        left_sum += y[midleft - 1 - k] * (half_sin_left / a_left * (1.0 + cos_left))
        right_sum += y[midright - 1 + k] * (half_sin_right / a_right * (1.0 + cos_right))
        a_left += math.pi
        a_right += math.pi
        cos_left, sin_left = cos_left * cos_dl - sin_left * sin_dl, cos_left * sin_dl + sin_left * cos_dl
        cos_right, sin_right = cos_right * cos_dr - sin_right * sin_dr, cos_right * sin_dr + sin_right * cos_dr
        half_sin_left = -half_sin_left
        half_sin_right = -half_sin_right
    return left_sum + right_sum


@njit(cache=True, error_model="numpy")
def _improve_maximum(y: np.ndarray, ixmid: int, depth: int) -> tuple[float, float]:
    """Praat's ``NUMimproveMaximum`` with sinc interpolation: Brent's minimisation of minus the
    interpolated ``y`` over ``[ixmid - 1, ixmid + 1]`` (1-based); returns (position, maximum)."""
    size = len(y)
    if ixmid <= 1:
        return 1.0, y[0]
    if ixmid >= size:
        return float(size), y[size - 1]
    a, b = ixmid - 1.0, ixmid + 1.0
    golden = 1.0 - 0.6180339887498948482
    v = a + golden * (b - a)
    fv = -_sinc(y, v, depth)
    x = w = v
    fx = fw = fv
    for _ in range(60):
        middle = 0.5 * (a + b)
        tol_act = SQRT_EPSILON * abs(x) + BRENT_TOLERANCE / 3.0
        if abs(x - middle) + 0.5 * (b - a) <= 2.0 * tol_act:
            break
        step = golden * (b - x if x < middle else a - x)
        if abs(x - w) >= tol_act:
            t = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * t
            q = 2.0 * (q - t)
            if q > 0.0:
                p = -p
            else:
                q = -q
            if abs(p) < abs(step * q) and p > q * (a - x + 2.0 * tol_act) and p < q * (b - x - 2.0 * tol_act):
                step = p / q
        if abs(step) < tol_act:
            step = tol_act if step > 0.0 else -tol_act
        t = x + step
        ft = -_sinc(y, t, depth)
        if ft <= fx:
            if t < x:
                b = x
            else:
                a = x
            v, w, x = w, x, t
            fv, fw, fx = fw, fx, ft
        else:
            if t < x:
                a = t
            else:
                b = t
            if ft <= fw or w == x:
                v, w = w, t
                fv, fw = fw, ft
            elif ft <= fv or v == x or v == w:
                v, fv = t, ft
    return x, -fx


@njit(cache=True, error_model="numpy")
def _refine(r: np.ndarray, lag: int, sr: float, frequency: float) -> tuple[float, float]:
    """Praat's second pass for one candidate: (frequency, strength) at the maximum of the sinc-interpolated
    ``r`` (lags -m..m) near ``lag``; strengths above 1 (short windows) are reflected around 1."""
    offset = -(len(r) - 1) // 2 - 1
    depth = FINE_SINC_DEPTH if frequency > 0.3 * sr else REFINE_SINC_DEPTH
    xmid, ymid = _improve_maximum(r, lag - offset, depth)
    return sr / (xmid + offset), (1.0 / ymid if ymid > 1.0 else ymid)


@njit(cache=True, error_model="numpy")
def _climb(r: np.ndarray, x: float, steps: tuple[float, ...]) -> tuple[float, float]:
    """Parabolic steps up the depth-70 sinc interpolation of ``r`` from 1-based position ``x``: per step
    size ``h``, to the vertex of the parabola through ``x - h``, ``x`` and ``x + h`` when it lies between
    them, else to the higher of the two. Returns the final position and the value there (strengths above
    1, from short windows, reflected around 1)."""
    value = 0.0
    for h in steps:
        value = _sinc(r, x, REFINE_SINC_DEPTH)
        left = _sinc(r, x - h, REFINE_SINC_DEPTH)
        right = _sinc(r, x + h, REFINE_SINC_DEPTH)
        curvature = left + right - 2.0 * value
        if curvature < 0.0 and abs(left - right) <= -2.0 * curvature:  # the vertex lies within h: go there
            x += 0.5 * h * (left - right) / curvature
            value -= 0.125 * (left - right) ** 2 / curvature
        elif max(left, right) > value:  # otherwise step to the higher neighbour
            x, value = (x - h, left) if left > right else (x + h, right)
    return x, (1.0 / value if value > 1.0 else value)


@njit(cache=True, error_model="numpy")
def _frames(
    y: np.ndarray, left: np.ndarray, window: np.ndarray, n_fft: int, nsamp_period: int, half_period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded Hann-windowed frames, shape (t, n_fft), each less the mean of the two floor periods
    around its centre, and the largest absolute windowed sample within half a period of the centre, shape (t,)."""
    n_frames = len(left)
    nsamp_window = len(window)
    half_window = nsamp_window // 2
    frames = np.zeros((n_frames, n_fft), dtype=np.float32)
    local_peak = np.zeros(n_frames)
    for f in range(n_frames):
        total = 0.0
        for i in range(left[f] + 1 - nsamp_period, left[f] + nsamp_period + 1):
            total += y[i]
        mean = total / (2 * nsamp_period)
        start = left[f] + 1 - half_window
        for j in range(nsamp_window):
            frames[f, j] = (y[start + j] - mean) * window[j]
        for j in range(max(half_window - half_period, 0), min(half_window + half_period, nsamp_window)):
            local_peak[f] = max(local_peak[f], abs(frames[f, j]))
    return frames, local_peak


@njit(cache=True, error_model="numpy")
def _normalise(ac: np.ndarray, window_r: np.ndarray, out: np.ndarray) -> None:
    """Praat's normalised autocorrelation, lags -m..m into ``out`` (shape (2 m + 1,)): ``ac`` (lags
    0..m) over its lag-0 value and over the window's own normalised autocorrelation."""
    m = len(window_r) - 1
    out[m] = 1.0
    for i in range(1, m + 1):
        out[m + i] = out[m - i] = ac[i] / (ac[0] * window_r[i])


@njit(cache=True, error_model="numpy")
def _power(spectrum: np.ndarray) -> None:
    """Replace each complex value by its squared magnitude, in place."""
    for f in range(spectrum.shape[0]):
        for k in range(spectrum.shape[1]):
            z = spectrum[f, k]
            spectrum[f, k] = z.real * z.real + z.imag * z.imag


@njit(cache=True, error_model="numpy")
def _local_score(strength: float, frequency: float) -> float:
    """A candidate's own score in the path finder, up to a constant: strength plus the octave cost's
    preference for high frequencies."""
    return strength + OCTAVE_COST * math.log2(frequency)


@njit(cache=True, error_model="numpy")
def _track(
    ac: np.ndarray,
    window_r: np.ndarray,
    intensity: np.ndarray,
    sr: float,
    f0_min: float,
    ceiling: float,
    dt: float,
    max_lag: int,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of every frame from its autocorrelation ``ac`` (shape (t, >= m + 1), lags 0..m, m the
    length of ``window_r`` less one), then the path: the chosen (frequency, strength) per frame, 0 where
    voiceless."""
    n_frames = ac.shape[0]
    m = len(window_r) - 1
    offset = -m - 1
    rf = np.empty(2 * m + 1)
    freq = np.zeros((n_frames, max_candidates))
    strength = np.zeros((n_frames, max_candidates))
    lags = np.zeros((n_frames, max_candidates), dtype=np.int64)
    count = np.ones(n_frames, dtype=np.int64)
    for f in range(n_frames):
        if intensity[f] == 0.0:  # absolute silence around the centre: voiceless only
            continue
        _normalise(ac[f], window_r, rf)
        n = 1
        for i in range(2, min(max_lag, m)):
            ri = rf[m + i]
            if not (ri > 0.5 * VOICING_THRESHOLD and ri > rf[m + i - 1] and ri >= rf[m + i + 1]):
                continue
            dr = 0.5 * (rf[m + i + 1] - rf[m + i - 1])
            d2r = 2.0 * ri - rf[m + i - 1] - rf[m + i + 1]
            frequency = sr / (i + dr / d2r)
            value = _sinc(rf, sr / frequency - offset, STRENGTH_SINC_DEPTH)
            if value > 1.0:
                value = 1.0 / value
            place = -1
            if n < max_candidates:
                place = n
                n += 1
            else:  # full: replace the weakest, if this one is stronger
                weakest = 2.0
                for k in range(1, max_candidates):
                    local = strength[f, k] - OCTAVE_COST * math.log2(f0_min / freq[f, k])
                    if local < weakest:
                        weakest = local
                        place = k
                if value - OCTAVE_COST * math.log2(f0_min / frequency) <= weakest:
                    place = -1
            if place >= 0:
                freq[f, place] = frequency
                strength[f, place] = value
                lags[f, place] = i
        count[f] = n
        top = -1e30
        for k in range(1, n):
            top = max(top, _local_score(strength[f, k], freq[f, k]))
        for k in range(1, n):
            # refining moves a candidate by less than a lag: one whose lag is over a lag short of the
            # ceiling's stays voiceless; one far below the frame's best is not in a close race
            if lags[f, k] + 1 >= sr / ceiling and _local_score(strength[f, k], freq[f, k]) >= top - ESTIMATE_MARGIN:
                x, strength[f, k] = _climb(rf, lags[f, k] - offset, ESTIMATE_STEPS)
                freq[f, k] = sr / (x + offset)

    chosen = _path(freq, strength, count, intensity, ceiling, dt)
    f0 = np.zeros(n_frames)
    chosen_strength = np.zeros(n_frames)
    for f in range(n_frames):
        k = chosen[f]
        if k > 0:
            _normalise(ac[f], window_r, rf)
            f0[f], chosen_strength[f] = _refine(rf, lags[f, k], sr, freq[f, k])
    return f0, chosen_strength


@njit(cache=True, error_model="numpy")
def _path(
    freq: np.ndarray, strength: np.ndarray, count: np.ndarray, intensity: np.ndarray, ceiling: float, dt: float
) -> np.ndarray:
    """Praat's ``Pitch_pathFinder`` (no formant pulling): the index of the chosen candidate per frame."""
    n_frames, n_cand = freq.shape
    correction = 0.01 / dt
    jump_cost = OCTAVE_JUMP_COST * correction
    vu_cost = VOICED_UNVOICED_COST * correction
    delta = np.empty((n_frames, n_cand))
    psi = np.zeros((n_frames, n_cand), dtype=np.int64)
    voiceless = np.empty((n_frames, n_cand), dtype=np.bool_)
    for f in range(n_frames):
        unvoiced_strength = VOICING_THRESHOLD + max(
            0.0, 2.0 - intensity[f] / (SILENCE_THRESHOLD / (1.0 + VOICING_THRESHOLD))
        )
        for k in range(count[f]):
            fk = freq[f, k]
            voiceless[f, k] = not (fk > 0.0 and fk < ceiling)
            if voiceless[f, k]:
                delta[f, k] = unvoiced_strength
            else:
                delta[f, k] = strength[f, k] - OCTAVE_COST * math.log2(ceiling / fk)
    for f in range(1, n_frames):
        for k2 in range(count[f]):
            best = -1e30
            place = 0
            for k1 in range(count[f - 1]):
                if voiceless[f, k2]:
                    cost = 0.0 if voiceless[f - 1, k1] else vu_cost
                elif voiceless[f - 1, k1]:
                    cost = vu_cost
                else:
                    cost = jump_cost * abs(math.log2(freq[f - 1, k1] / freq[f, k2]))
                value = delta[f - 1, k1] - cost + delta[f, k2]
                if value > best:
                    best = value
                    place = k1
            delta[f, k2] = best
            psi[f, k2] = place
    chosen = np.zeros(n_frames, dtype=np.int64)
    place = 0
    for k in range(1, count[n_frames - 1]):
        if delta[n_frames - 1, k] > delta[n_frames - 1, place]:
            place = k
    for f in range(n_frames - 1, -1, -1):
        chosen[f] = place
        place = psi[f, place]
    return chosen


def frame_times(n_samples: int, *, sr: int, window_s: float, step_s: float) -> tuple[int, float]:
    """Praat's ``Sampled_shortTermAnalysis``: how many frames of ``window_s`` fit, ``step_s`` apart,
    centred in the clip, and the first frame's centre in seconds (samples sit at ``(i + 0.5) / sr``)."""
    dx = 1.0 / sr
    x1 = 0.5 * dx
    duration = dx * n_samples
    n_frames = math.floor((duration - window_s) / step_s) + 1
    mid = x1 - 0.5 * dx + 0.5 * duration
    return n_frames, mid - 0.5 * n_frames * step_s + 0.5 * step_s


def to_pitch_ac(y: np.ndarray, *, sr: int, f0_min_hz: float, f0_max_hz: float) -> Pitch:
    """Praat's ``To Pitch (ac)`` (time step auto, 3 periods per window, 15 candidates, standard thresholds and costs).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples, at least three periods of ``f0_min_hz`` long.
    sr : int
        Sample rate of ``y``.
    f0_min_hz, f0_max_hz : float
        Pitch floor and ceiling.

    Returns
    -------
    Pitch
        ``floor((n / sr - 3 / f0_min_hz) / step) + 1`` frames.
    """
    y = np.asarray(y, dtype=np.float64)
    dx = 1.0 / sr
    dt = PERIODS_PER_WINDOW / f0_min_hz / 4.0
    ceiling = min(f0_max_hz, 0.5 / dx)
    max_candidates = max(MAX_CANDIDATES, math.floor(f0_max_hz / f0_min_hz))
    nsamp_period = math.floor(1.0 / dx / f0_min_hz)
    half_period = nsamp_period // 2 + 1
    window_s = PERIODS_PER_WINDOW / f0_min_hz
    half_window = math.floor(window_s / dx) // 2 - 1
    nsamp_window = 2 * half_window
    max_lag = min(math.floor(nsamp_window / PERIODS_PER_WINDOW) + 2, nsamp_window)
    m = math.floor(nsamp_window * INTERPOLATION_DEPTH)
    n_fft = scipy.fft.next_fast_len(nsamp_window + m + 1, real=True)

    n_frames, t1 = frame_times(len(y), sr=sr, window_s=window_s, step_s=dt)
    times = t1 + dt * np.arange(max(n_frames, 0))
    empty = np.zeros(len(times))
    global_peak = 0.0
    if len(y):
        mean = y.mean()
        mean += (y - mean).mean()  # one correction step, as Praat's exact mean: a constant signal has no peak
        global_peak = float(np.max(np.abs(y - mean)))
    if global_peak == 0.0 or len(times) == 0:
        return Pitch(times, empty, empty.copy(), t1, dt, ceiling)

    left = np.floor((times - 0.5 * dx) / dx + 1.0).astype(np.int64) - 1  # 0-based sample left of each centre
    window, window_r = _window(nsamp_window, n_fft)
    ac = np.empty((len(times), m + 1))
    local_peak = np.empty(len(times))
    for block in range(0, len(times), BLOCK_FRAMES):  # blocks small enough to stay in cache
        rows = slice(block, block + BLOCK_FRAMES)
        frames, local_peak[rows] = _frames(y, left[rows], window, n_fft, nsamp_period, half_period)
        spectrum = scipy.fft.rfft(frames, axis=1, overwrite_x=True)
        _power(spectrum)
        ac[rows] = scipy.fft.irfft(spectrum, n_fft, axis=1, overwrite_x=True)[:, : m + 1]
    intensity = np.minimum(local_peak / global_peak, 1.0)
    f0, strength = _track(ac, window_r[: m + 1], intensity, 1.0 / dx, f0_min_hz, ceiling, dt, max_lag, max_candidates)
    return Pitch(times, f0, strength, t1, dt, ceiling)
