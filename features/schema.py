"""The feature set: names (the model's column order), units and meanings, and its version.

Bump ``FEATURE_VERSION`` whenever a name, its order or the way a value is computed changes:
stored predictions and models are keyed by it.

Version 2: voice breaks, F0 range, jitter DDP, shimmer DDA, NHR, formants F1-F3, MFCC delta spread,
spectral slope, alpha ratio, Hammarberg index and loudness added; every spectral feature (MFCC
included) now reads one shared 50 ms spectrogram (32 ms frames before); jitter and shimmer are
computed in numpy from Praat's pulses, with the same values.

Version 3: the pitch track, glottal pulses and period peaks come from our own numpy/numba transcription
of Praat's algorithms (:mod:`features.pitch`, :mod:`features.pulses`) instead of parselmouth: on the
VOICED recordings the same voicing in every frame, F0 within 1.5e-6, jitter and shimmer within 2e-13,
HNR within 1.5e-4 dB of Praat's. Spectral shape measures are summed in float64 in one pass (they move
by at most 3e-6 relative); formant roots come from Aberth iteration (same formants to 1e-14).

Version 4: F0 modulation (:mod:`features.modulation`): 7 measures of the cycle-by-cycle F0 contour's
2-15 Hz movement (tremor, vibrato), from the same glottal pulses as jitter; +0.019 mean ROC AUC on fresh
VOICED seeds in ``bench/feature_families.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_VERSION: int = 4
N_MFCC = 13


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its column name, unit ("ratio" for dimensionless) and a one-line meaning."""

    name: str
    unit: str
    description: str


_F0 = (
    FeatureSpec("f0_mean_hz", "Hz", "mean fundamental frequency over voiced frames (Praat autocorrelation pitch)"),
    FeatureSpec("f0_std_hz", "Hz", "standard deviation of F0 over voiced frames"),
    FeatureSpec("f0_min_hz", "Hz", "lowest F0 of a voiced frame"),
    FeatureSpec("f0_max_hz", "Hz", "highest F0 of a voiced frame"),
    FeatureSpec("f0_range_st", "st", "F0 range (highest over lowest voiced frame) in semitones"),
    FeatureSpec("f0_std_st", "st", "standard deviation of F0 in semitones (comparable across voices)"),
    FeatureSpec("voiced_fraction", "ratio", "share of pitch frames that are voiced"),
    FeatureSpec("voice_breaks", "count", "runs of glottal pulse intervals longer than 1.25 pitch-floor periods"),
    FeatureSpec("voice_break_degree", "ratio", "summed length of those intervals / clip duration"),
)
_JITTER = (
    FeatureSpec("jitter_local", "ratio", "mean absolute difference of consecutive periods / mean period"),
    FeatureSpec("jitter_local_abs_us", "us", "mean absolute difference of consecutive periods"),
    FeatureSpec("jitter_rap", "ratio", "relative average perturbation: period vs its 3-period average"),
    FeatureSpec("jitter_ppq5", "ratio", "five-point period perturbation quotient"),
    FeatureSpec("jitter_ddp", "ratio", "difference of differences of periods (3 x RAP)"),
)
_SHIMMER = (
    FeatureSpec("shimmer_local", "ratio", "mean absolute difference of consecutive period amplitudes / mean amplitude"),
    FeatureSpec("shimmer_local_db", "dB", "mean absolute dB ratio of consecutive period amplitudes"),
    FeatureSpec("shimmer_apq3", "ratio", "three-point amplitude perturbation quotient"),
    FeatureSpec("shimmer_apq5", "ratio", "five-point amplitude perturbation quotient"),
    FeatureSpec("shimmer_apq11", "ratio", "eleven-point amplitude perturbation quotient"),
    FeatureSpec("shimmer_dda", "ratio", "difference of differences of amplitudes (3 x APQ3)"),
)
_NOISE = (
    FeatureSpec("hnr_mean_db", "dB", "mean harmonics-to-noise ratio over voiced frames"),
    FeatureSpec("hnr_std_db", "dB", "standard deviation of the frame HNR over voiced frames"),
    FeatureSpec("nhr_mean", "ratio", "mean noise-to-harmonics ratio (1 - r) / r over voiced frames"),
    FeatureSpec("cpps_db", "dB", "smoothed cepstral peak prominence (lower in dysphonic voices)"),
)
_F0_MODULATION = (
    FeatureSpec("f0_mod_2_4", "log10 st2", "log10 power of the cycle-by-cycle F0 contour (semitones) modulated at 2-4 Hz"),
    FeatureSpec("f0_mod_4_8", "log10 st2", "log10 power of the F0 contour modulated at 4-8 Hz (tremor, vibrato)"),
    FeatureSpec("f0_mod_8_15", "log10 st2", "log10 power of the F0 contour modulated at 8-15 Hz"),
    FeatureSpec("f0_mod_rel_4_15", "ratio", "share of the F0 contour's modulation power above 0.5 Hz that lies in 4-15 Hz"),
    FeatureSpec("f0_tremor_peak", "log10", "log10 of the strongest 2-15 Hz F0 modulation peak over that band's median"),
    FeatureSpec("f0_tremor_freq", "Hz", "frequency of the strongest 2-15 Hz F0 modulation peak"),
    FeatureSpec("f0_hp_std", "st", "standard deviation of the F0 contour above 1 Hz (drift removed)"),
)
_FORMANTS = tuple(
    spec
    for i in (1, 2, 3)
    for spec in (
        FeatureSpec(f"f{i}_mean_hz", "Hz", f"mean centre frequency of formant F{i} over voiced frames (LPC)"),
        FeatureSpec(f"f{i}_bandwidth_hz", "Hz", f"mean bandwidth of formant F{i} over voiced frames (LPC)"),
    )
)
_MFCC = tuple(
    FeatureSpec(f"mfcc{i}_{stat}", "dB", f"{what} of mel-frequency cepstral coefficient {i} over frames")
    for stat, what in (
        ("mean", "mean"),
        ("std", "standard deviation"),
        ("delta_std", "standard deviation of the frame-to-frame change (delta, per 10 ms)"),
    )
    for i in range(1, N_MFCC + 1)
)
_SPECTRAL = (
    FeatureSpec("spectral_centroid_mean_hz", "Hz", "mean spectral centre of mass"),
    FeatureSpec("spectral_centroid_std_hz", "Hz", "standard deviation of the spectral centroid"),
    FeatureSpec("spectral_bandwidth_mean_hz", "Hz", "mean spectral spread around the centroid"),
    FeatureSpec("spectral_rolloff_mean_hz", "Hz", "mean frequency below which 85% of the spectral magnitude lies"),
    FeatureSpec("spectral_flatness_mean", "ratio", "mean geometric / arithmetic mean of the power spectrum (1 = flat)"),
    FeatureSpec("spectral_slope_db_per_khz", "dB/kHz", "mean least-squares slope of the dB spectrum, 50 Hz-5 kHz"),
    FeatureSpec("alpha_ratio_db", "dB", "mean energy ratio 1-5 kHz over 50 Hz-1 kHz"),
    FeatureSpec("hammarberg_index_db", "dB", "mean ratio of the strongest bin 0-2 kHz over the strongest 2-5 kHz"),
    FeatureSpec("loudness_mean", "au", "mean loudness: sum over 40 mel bands of band power^0.3 (scales with level)"),
    FeatureSpec("loudness_std", "au", "standard deviation of the frame loudness"),
    FeatureSpec("zcr_mean", "ratio", "mean share of consecutive samples that change sign"),
    FeatureSpec("rms_mean_dbfs", "dBFS", "mean frame RMS level (floored at -120 dBFS)"),
    FeatureSpec("rms_std_db", "dB", "standard deviation of the frame RMS level"),
)

FEATURES: tuple[FeatureSpec, ...] = _F0 + _JITTER + _SHIMMER + _NOISE + _F0_MODULATION + _FORMANTS + _MFCC + _SPECTRAL
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
