"""The feature set: names (the model's column order), units and meanings, and its version.

Bump ``FEATURE_VERSION`` whenever a name, its order or the way a value is computed changes:
stored predictions and models are keyed by it.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_VERSION: int = 1
N_MFCC = 13


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its column name, unit ("ratio" for dimensionless) and a one-line meaning."""

    name: str
    unit: str
    description: str


_VOICE = (
    FeatureSpec("f0_mean_hz", "Hz", "mean fundamental frequency over voiced frames (Praat autocorrelation pitch)"),
    FeatureSpec("f0_std_hz", "Hz", "standard deviation of F0 over voiced frames"),
    FeatureSpec("f0_min_hz", "Hz", "lowest F0 of a voiced frame"),
    FeatureSpec("f0_max_hz", "Hz", "highest F0 of a voiced frame"),
    FeatureSpec("f0_std_st", "st", "standard deviation of F0 in semitones (comparable across voices)"),
    FeatureSpec("voiced_fraction", "ratio", "share of pitch frames that are voiced"),
    FeatureSpec("jitter_local", "ratio", "mean absolute difference of consecutive periods / mean period"),
    FeatureSpec("jitter_local_abs_us", "us", "mean absolute difference of consecutive periods"),
    FeatureSpec("jitter_rap", "ratio", "relative average perturbation: period vs its 3-period average"),
    FeatureSpec("jitter_ppq5", "ratio", "five-point period perturbation quotient"),
    FeatureSpec("shimmer_local", "ratio", "mean absolute difference of consecutive period amplitudes / mean amplitude"),
    FeatureSpec("shimmer_local_db", "dB", "mean absolute dB ratio of consecutive period amplitudes"),
    FeatureSpec("shimmer_apq3", "ratio", "three-point amplitude perturbation quotient"),
    FeatureSpec("shimmer_apq5", "ratio", "five-point amplitude perturbation quotient"),
    FeatureSpec("shimmer_apq11", "ratio", "eleven-point amplitude perturbation quotient"),
    FeatureSpec("hnr_mean_db", "dB", "mean harmonics-to-noise ratio over voiced frames"),
    FeatureSpec("hnr_std_db", "dB", "standard deviation of the frame HNR over voiced frames"),
)
_CEPSTRAL = (FeatureSpec("cpps_db", "dB", "smoothed cepstral peak prominence (lower in dysphonic voices)"),)
_MFCC = tuple(
    FeatureSpec(f"mfcc{i}_{stat}", "dB", f"{what} of mel-frequency cepstral coefficient {i} over frames")
    for stat, what in (("mean", "mean"), ("std", "standard deviation"))
    for i in range(1, N_MFCC + 1)
)
_SPECTRAL = (
    FeatureSpec("spectral_centroid_mean_hz", "Hz", "mean spectral centre of mass"),
    FeatureSpec("spectral_centroid_std_hz", "Hz", "standard deviation of the spectral centroid"),
    FeatureSpec("spectral_bandwidth_mean_hz", "Hz", "mean spectral spread around the centroid"),
    FeatureSpec("spectral_rolloff_mean_hz", "Hz", "mean frequency below which 85% of the spectral energy lies"),
    FeatureSpec("spectral_flatness_mean", "ratio", "mean geometric / arithmetic mean of the power spectrum (1 = flat)"),
    FeatureSpec("zcr_mean", "ratio", "mean share of consecutive samples that change sign"),
    FeatureSpec("rms_mean_dbfs", "dBFS", "mean frame RMS level (floored at -120 dBFS)"),
    FeatureSpec("rms_std_db", "dB", "standard deviation of the frame RMS level"),
)

FEATURES: tuple[FeatureSpec, ...] = _VOICE + _CEPSTRAL + _MFCC + _SPECTRAL
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
