"""All features of one decoded clip, in the schema's column order, and why some are NaN.

One pitch track (Praat's algorithm, :mod:`features.pitch`) feeds the voice and formant features, one power spectrogram the spectral
and cepstral ones: each intermediate result is computed once per clip.
"""

from __future__ import annotations

import math

import librosa
import numpy as np

from features.audio import Audio
from features.cepstral import cepstral_features
from features.formants import FORMANT_NAMES, formant_features
from features.modulation import F0_MODULATION_NAMES
from features.perturbation import JITTER_NAMES, SHIMMER_NAMES
from features.schema import FEATURE_NAMES, N_MFCC
from features.spectral import spectral_features
from features.spectrogram import power_spectrogram
from features.synth import synth_vowel
from features.voice import BREAK_NAMES, analyse_pitch, voice_features
from voxflow.errors import FeatureError

WARM_UP_RATE = 16_000
_PERIOD_NAMES = frozenset((*BREAK_NAMES, *JITTER_NAMES, *SHIMMER_NAMES, *F0_MODULATION_NAMES))


def extract_features(audio: Audio) -> dict[str, float]:
    """Compute every feature of ``FEATURE_NAMES`` from one decoded clip.

    Parameters
    ----------
    audio : Audio
        A clip that passed the quality gate (finite samples).

    Returns
    -------
    dict of str to float
        Keys exactly ``FEATURE_NAMES``, in order; NaN where a feature is undefined for this clip
        (:func:`feature_flags` names the reasons).

    Raises
    ------
    FeatureError
        librosa or the linear-prediction solver refused the samples, or a feature overflowed to
        ±inf (samples far beyond full scale), which XGBoost would refuse for the whole chunk.
    """
    y, sr = audio.samples, audio.sample_rate
    try:
        track = analyse_pitch(y, sr=sr)
        spectrogram = power_spectrogram(y, sr=sr)
        values = {
            **voice_features(track),
            **cepstral_features(spectrogram),
            **formant_features(y, sr=sr, times=track.times[track.voiced]),
            **spectral_features(y, spectrogram, n_mfcc=N_MFCC),
        }
    except (librosa.ParameterError, np.linalg.LinAlgError) as exc:
        raise FeatureError(f"{type(exc).__name__}: {str(exc).strip()}") from exc
    infinite = [name for name in FEATURE_NAMES if math.isinf(values[name])]
    if infinite:
        raise FeatureError(f"infinite feature values ({', '.join(infinite)}): samples far beyond full scale?")
    return {name: values[name] for name in FEATURE_NAMES}


def feature_flags(features: dict[str, float]) -> tuple[str, ...]:
    """Why features of a clip are NaN, read from the NaN pattern of :func:`extract_features`.

    Parameters
    ----------
    features : dict of str to float
        One clip's features (keys ``FEATURE_NAMES``).

    Returns
    -------
    tuple of str
        In this order, each only when it applies:

        - ``"too_short_for_pitch"``: under three periods of the 60 Hz pitch floor (~50 ms) or
          five pitch frames; every voice and formant feature is NaN.
        - ``"unvoiced"``: fewer than five voiced pitch frames (silence, noise); every voice and
          formant feature but ``voiced_fraction`` is NaN.
        - ``"too_few_periods"``: voiced, but some jitter, shimmer or voice-break measure has no
          run of valid periods, or F0 modulation has under 20 cycles spanning 1 s.
        - ``"no_formants"``: voiced, but fewer than five frames show F1, F2 or F3.
        - ``"digital_silence"``: no frame above -120 dBFS; MFCC, spectral shape and CPPS are NaN.
    """
    nan = {name for name, value in features.items() if math.isnan(value)}
    flags = []
    if "voiced_fraction" in nan:
        flags.append("too_short_for_pitch")
    elif "f0_mean_hz" in nan:
        flags.append("unvoiced")
    else:
        if nan & _PERIOD_NAMES:
            flags.append("too_few_periods")
        if nan.intersection(FORMANT_NAMES):
            flags.append("no_formants")
    if "cpps_db" in nan:
        flags.append("digital_silence")
    return tuple(flags)


def warm_up() -> None:
    """Run :func:`extract_features` once on a 1 s synthetic vowel, so that imports, numba JIT and
    caches are paid once per worker process rather than on its first real clip."""
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, sr=WARM_UP_RATE, jitter=0.01, shimmer=0.03, hnr_db=20.0)
    extract_features(Audio(samples=y, sample_rate=WARM_UP_RATE, source_rate=WARM_UP_RATE, channels=1, duration_s=1.0))
