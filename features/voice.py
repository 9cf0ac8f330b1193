"""Voice-source features from one pitch track and one glottal-pulse train: F0, voice breaks,
jitter, shimmer, harmonics-to-noise ratio, F0 modulation.

The autocorrelation pitch track (:mod:`features.pitch`, Praat's ``To Pitch (ac)``), the periodic pulses
and the per-period peak amplitudes (:mod:`features.pulses`, Praat's ``To PointProcess (cc)`` and
``To AmplitudeTier (period)``) are our own transcriptions of Praat's algorithms, in numpy and numba,
checked against parselmouth on the VOICED recordings; jitter and shimmer are then computed in numpy
(:mod:`features.perturbation`), bit-for-bit Praat's own definitions. HNR comes from the same pitch
track: Praat's harmonicity is ``10 log10(r / (1 - r))`` of the normalised autocorrelation peak ``r`` of
each frame (Boersma 1993), which the track already holds as the strength of its chosen candidate. On
synthetic vowels it recovers the added noise's HNR within 0.65 dB at 10, 20 and 30 dB and costs
nothing; ``To Harmonicity (cc)`` is within 0.8 dB and costs another 30-60 ms per 5 s clip. NHR is the
voice report's ``(1 - r) / r`` of the same frames. F0 modulation (:mod:`features.modulation`) reads the
same pulses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.modulation import F0_MODULATION_NAMES, f0_modulation
from features.perturbation import (
    JITTER_NAMES,
    MAX_PERIOD_FACTOR,
    PERIOD_CEILING_S,
    PERIOD_FLOOR_S,
    SHIMMER_NAMES,
    jitter,
    shimmer,
)
from features.pitch import Pitch, to_pitch_ac
from features.pulses import period_peaks, pulse_times

F0_MIN_HZ = 60.0
F0_MAX_HZ = 600.0
PITCH_WINDOW_PERIODS = 3  # Praat's autocorrelation window holds three periods of the pitch floor
MIN_VOICED_FRAMES = 5  # fewer voiced frames than this (~60 ms) is a spurious detection, not a voice
R_LIMIT = 1e-15  # Praat's clamp on r before converting to dB
VOICE_BREAK_PERIODS = 1.25  # a pulse interval over 1.25 periods of the pitch floor is a break (Praat's voice report)

F0_NAMES = ("f0_mean_hz", "f0_std_hz", "f0_min_hz", "f0_max_hz", "f0_range_st", "f0_std_st", "voiced_fraction")
BREAK_NAMES = ("voice_breaks", "voice_break_degree")
HNR_NAMES = ("hnr_mean_db", "hnr_std_db", "nhr_mean")
VOICE_NAMES = (*F0_NAMES, *BREAK_NAMES, *JITTER_NAMES, *SHIMMER_NAMES, *HNR_NAMES, *F0_MODULATION_NAMES)


@dataclass(frozen=True)
class PitchTrack:
    """One clip's pitch analysis, shared by the voice and formant features.

    Attributes
    ----------
    samples : np.ndarray, shape (n,), float64
        The clip.
    sr : int
        Its sample rate.
    pitch : Pitch or None
        Autocorrelation pitch track of ``samples``; None when the clip is too short for a pitch frame.
    f0_min_hz : float
        The pitch floor the track was computed with.
    """

    samples: np.ndarray
    sr: int
    pitch: Pitch | None
    f0_min_hz: float

    @property
    def times(self) -> np.ndarray:
        """Shape (t,): frame centres in seconds."""
        return self.pitch.times if self.pitch is not None else np.empty(0)

    @property
    def f0_hz(self) -> np.ndarray:
        """Shape (t,): F0 of each frame, 0 where unvoiced."""
        return self.pitch.f0_hz if self.pitch is not None else np.empty(0)

    @property
    def strength(self) -> np.ndarray:
        """Shape (t,): normalised autocorrelation peak of the chosen candidate."""
        return self.pitch.strength if self.pitch is not None else np.empty(0)

    @property
    def voiced(self) -> np.ndarray:
        """Shape (t,) bool: frames with a pitch."""
        return self.f0_hz > 0

    @property
    def is_voice(self) -> bool:
        """Enough voiced frames to call the clip a voice."""
        return int(self.voiced.sum()) >= MIN_VOICED_FRAMES


def analyse_pitch(
    y: np.ndarray, *, sr: int, f0_min_hz: float = F0_MIN_HZ, f0_max_hz: float = F0_MAX_HZ
) -> PitchTrack:
    """Praat's autocorrelation pitch track (``To Pitch (ac)``, standard settings) of a clip.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Finite mono samples.
    sr : int
        Sample rate of ``y``.
    f0_min_hz, f0_max_hz : float
        Pitch search range.

    Returns
    -------
    PitchTrack
        With no frames when ``y`` is shorter than three periods of ``f0_min_hz``.
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) < PITCH_WINDOW_PERIODS * sr / f0_min_hz:
        return PitchTrack(y, sr, None, f0_min_hz)
    return PitchTrack(y, sr, to_pitch_ac(y, sr=sr, f0_min_hz=f0_min_hz, f0_max_hz=f0_max_hz), f0_min_hz)


def _voice_breaks(pulses: np.ndarray, *, duration_s: float, f0_min_hz: float) -> dict[str, float]:
    """Praat's voice report: count of runs of pulse intervals longer than 1.25 floor periods, and their
    summed length as a share of the clip (Praat's loop leaves out the last interval; so do we)."""
    intervals = np.diff(pulses)[:-1]
    long = intervals > VOICE_BREAK_PERIODS / f0_min_hz
    starts = long & ~np.concatenate(([False], long[:-1]))
    return {"voice_breaks": float(starts.sum()), "voice_break_degree": float(intervals[long].sum() / duration_s)}


def voice_features(track: PitchTrack) -> dict[str, float]:
    """F0 statistics, voice breaks, jitter, shimmer, HNR and F0 modulation of a (sustained) voice.

    Undefined measures are NaN: all of them for a clip too short for five pitch frames (~110 ms
    at a 60 Hz floor), all but ``voiced_fraction`` when fewer than five frames are voiced (silence,
    noise), jitter or shimmer measures for which no run of periods counts, and F0 modulation under 20
    cycles spanning 1 s.

    Parameters
    ----------
    track : PitchTrack
        The clip's pitch analysis (:func:`analyse_pitch`).

    Returns
    -------
    dict of str to float
        Keys ``VOICE_NAMES``: F0 in Hz (range and spread also in semitones), voice breaks (count and
        share of the duration), jitter and shimmer as ratios (``jitter_local_abs_us`` in
        microseconds, ``shimmer_local_db`` in dB), HNR in dB and NHR over voiced frames, F0 modulation
        (:func:`features.modulation.f0_modulation`).
    """
    out = dict.fromkeys(VOICE_NAMES, float("nan"))
    if len(track.times) < MIN_VOICED_FRAMES:
        return out
    out["voiced_fraction"] = float(track.voiced.mean())
    if not track.is_voice:
        return out

    f0 = track.f0_hz[track.voiced]
    semitones = 12.0 * np.log2(f0)
    out.update(
        f0_mean_hz=float(f0.mean()),
        f0_std_hz=float(f0.std()),
        f0_min_hz=float(f0.min()),
        f0_max_hz=float(f0.max()),
        f0_range_st=float(semitones.max() - semitones.min()),
        f0_std_st=float(semitones.std()),
    )
    r = np.clip(track.strength[track.voiced], R_LIMIT, 1.0 - R_LIMIT)
    hnr = 10.0 * np.log10(r / (1.0 - r))
    out.update(hnr_mean_db=float(hnr.mean()), hnr_std_db=float(hnr.std()), nhr_mean=float(np.mean((1.0 - r) / r)))

    pulses = pulse_times(track.samples, track.pitch, sr=track.sr)
    if len(pulses) >= 3:
        out.update(_voice_breaks(pulses, duration_s=len(track.samples) / track.sr, f0_min_hz=track.f0_min_hz))
    out.update(jitter(pulses))
    out.update(f0_modulation(pulses, f0_min_hz=track.f0_min_hz, f0_max_hz=F0_MAX_HZ))
    peaks = period_peaks(
        track.samples,
        pulses,
        sr=track.sr,
        period_floor_s=PERIOD_FLOOR_S,
        period_ceiling_s=PERIOD_CEILING_S,
        max_period_factor=MAX_PERIOD_FACTOR,
    )
    out.update(shimmer(*peaks))
    return out
