"""Voice-source features from Praat (via parselmouth): F0, jitter, shimmer, harmonics-to-noise ratio.

One autocorrelation pitch track and one periodic PointProcess serve every measure. HNR comes from
that same pitch track: Praat's harmonicity is ``10 log10(r / (1 - r))`` of the normalised
autocorrelation peak ``r`` of each frame (Boersma 1993), which the track already holds as the
strength of its chosen candidate. On synthetic vowels it recovers the added noise's HNR within
0.65 dB at 10, 20 and 30 dB and costs nothing; ``To Harmonicity (cc)`` is within 0.8 dB and costs
another 30-60 ms per 5 s clip. Jitter and shimmer use Praat's standard arguments (period range
0.1-20 ms, period factor 1.3, amplitude factor 1.6).
"""

from __future__ import annotations

import numpy as np
import parselmouth
from parselmouth.praat import call

PERIOD_FLOOR_S = 0.0001
PERIOD_CEILING_S = 0.02
MAX_PERIOD_FACTOR = 1.3
MAX_AMPLITUDE_FACTOR = 1.6
PITCH_WINDOW_PERIODS = 3  # Praat's autocorrelation window holds three periods of the pitch floor
MIN_VOICED_FRAMES = 5  # fewer voiced frames than this (~60 ms) is a spurious detection, not a voice
R_LIMIT = 1e-15  # Praat's clamp on r before converting to dB

JITTERS = {"jitter_local": "local", "jitter_rap": "rap", "jitter_ppq5": "ppq5"}
SHIMMERS = {
    "shimmer_local": "local",
    "shimmer_local_db": "local_dB",
    "shimmer_apq3": "apq3",
    "shimmer_apq5": "apq5",
    "shimmer_apq11": "apq11",
}
VOICE_NAMES = (
    "f0_mean_hz",
    "f0_std_hz",
    "f0_min_hz",
    "f0_max_hz",
    "f0_std_st",
    "voiced_fraction",
    "jitter_local",
    "jitter_local_abs_us",
    "jitter_rap",
    "jitter_ppq5",
    *SHIMMERS,
    "hnr_mean_db",
    "hnr_std_db",
)


def voice_features(y: np.ndarray, *, sr: int, f0_min_hz: float = 60.0, f0_max_hz: float = 600.0) -> dict[str, float]:
    """F0 statistics, jitter, shimmer and HNR of a (sustained) voice.

    Undefined measures are NaN: all of them for a clip too short for five pitch frames (~110 ms
    at a 60 Hz floor), all but ``voiced_fraction`` when fewer than five frames are voiced (silence,
    noise), and whichever Praat reports as undefined.

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
    dict of str to float
        Keys ``VOICE_NAMES``: F0 in Hz (``f0_std_st`` in semitones), jitter and shimmer as ratios
        (``jitter_local_abs_us`` in microseconds, ``shimmer_local_db`` in dB), HNR in dB over
        voiced frames.
    """
    out = dict.fromkeys(VOICE_NAMES, float("nan"))
    if len(y) < PITCH_WINDOW_PERIODS * sr / f0_min_hz:
        return out
    sound = parselmouth.Sound(np.asarray(y, dtype=np.float64), sampling_frequency=sr)
    pitch = sound.to_pitch_ac(pitch_floor=f0_min_hz, pitch_ceiling=f0_max_hz)
    if pitch.n_frames < MIN_VOICED_FRAMES:
        return out
    frames = pitch.selected_array
    voiced = frames["frequency"] > 0
    out["voiced_fraction"] = float(voiced.mean())
    if voiced.sum() < MIN_VOICED_FRAMES:
        return out

    f0 = frames["frequency"][voiced]
    out.update(
        f0_mean_hz=float(f0.mean()),
        f0_std_hz=float(f0.std()),
        f0_min_hz=float(f0.min()),
        f0_max_hz=float(f0.max()),
        f0_std_st=float(np.std(12.0 * np.log2(f0))),
    )
    r = np.clip(frames["strength"][voiced], R_LIMIT, 1.0 - R_LIMIT)
    hnr = 10.0 * np.log10(r / (1.0 - r))
    out.update(hnr_mean_db=float(hnr.mean()), hnr_std_db=float(hnr.std()))

    points = call([sound, pitch], "To PointProcess (cc)")
    periods = (0, 0, PERIOD_FLOOR_S, PERIOD_CEILING_S, MAX_PERIOD_FACTOR)
    for name, kind in JITTERS.items():
        out[name] = float(call(points, f"Get jitter ({kind})", *periods))
    out["jitter_local_abs_us"] = float(call(points, "Get jitter (local, absolute)", *periods)) * 1e6
    for name, kind in SHIMMERS.items():
        out[name] = float(call([sound, points], f"Get shimmer ({kind})", *periods, MAX_AMPLITUDE_FACTOR))
    return out
