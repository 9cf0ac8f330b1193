"""All features of one decoded clip, in the schema's column order."""

from __future__ import annotations

import librosa
import parselmouth

from features.audio import Audio
from features.cepstral import cepstral_features
from features.schema import FEATURE_NAMES, N_MFCC
from features.spectral import spectral_features
from features.synth import synth_vowel
from features.voice import voice_features
from voxflow.errors import FeatureError

WARM_UP_RATE = 16_000


def extract_features(audio: Audio) -> dict[str, float]:
    """Compute every feature of ``FEATURE_NAMES`` from one decoded clip.

    Parameters
    ----------
    audio : Audio
        A clip that passed the quality gate (finite samples).

    Returns
    -------
    dict of str to float
        Keys exactly ``FEATURE_NAMES``, in order; NaN where a feature is undefined for this clip.

    Raises
    ------
    FeatureError
        Praat or librosa refused the samples.
    """
    y, sr = audio.samples, audio.sample_rate
    try:
        values = {
            **voice_features(y, sr=sr),
            **cepstral_features(y, sr=sr),
            **spectral_features(y, sr=sr, n_mfcc=N_MFCC),
        }
    except (parselmouth.PraatError, librosa.ParameterError) as exc:
        raise FeatureError(f"{type(exc).__name__}: {str(exc).strip()}") from exc
    return {name: values[name] for name in FEATURE_NAMES}


def warm_up() -> None:
    """Run :func:`extract_features` once on a 1 s synthetic vowel, so that imports, numba JIT and
    caches are paid once per worker process rather than on its first real clip."""
    y = synth_vowel(f0_hz=150.0, duration_s=1.0, sr=WARM_UP_RATE, jitter=0.01, shimmer=0.03, hnr_db=20.0)
    extract_features(Audio(samples=y, sample_rate=WARM_UP_RATE, source_rate=WARM_UP_RATE, channels=1, duration_s=1.0))
