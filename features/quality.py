"""The quality gate: reject clips no feature can be trusted on, flag the ones to read with care.

Clipping: a clip is refused when more than ``clipping_fraction`` of its samples sit in flat tops at
its extremes (:func:`features.clipping.flat_top_fraction`, measured by the decoder on the file's
own samples and carried in ``Audio.clipped_fraction``; for an Audio built by hand, on its samples).

Full scale: integer PCM decodes within ±1, but float samples (and a WFDB record's physical values) can hold anything, and features are
computed on levels relative to full scale (far beyond it, float32 power spectra overflow). A clip
whose own peak (``Audio.peak``) exceeds ``MAX_PEAK`` (2.0, +6 dBFS) is refused. The margin keeps
float files that are legitimately a little hot, e.g. resampled after normalising to full scale:
resampling overshoots a full-scale voice by ~1 dB (VOICED records resampled 8 -> 16 kHz peak at up
to 1.13) and a full-scale square wave by up to 2.2 dB (1.29, soxr HQ). Mis-scaled audio lands far
beyond: 16-bit integer samples written as float peak up to 32767 (+90 dBFS).

Cancelling channels: a clip is the mean of its file's channels, and channels in opposite phase (a
stereo file with one channel inverted) cancel out in it. A mix below the silence level is refused
as such, not as silence, when its file's channels (their RMS over all samples, ``Audio.channels_rms``)
are above that level and the mix is more than ``MIX_LOSS_MARGIN_DB`` below the least that averaging
channels which do not cancel can leave: their level less ``10 * log10(channels)`` dB (reached by
one channel beside silent ones, or by channels of independent noise).
"""

from __future__ import annotations

import numpy as np

from features.audio import Audio
from features.clipping import flat_top_fraction
from voxflow.errors import QualityError

LOW_LEVEL_DBFS = -40.0
MAX_PEAK = 2.0
CONSTANT_MEAN_TO_PEAK = 0.999  # a constant resampled keeps ~0.99997 (edge transients)
# 90 % of the power lost beyond averaging. The channels are measured at the file's rate, the mix
# after resampling, which takes from a voice only what lies above 8 kHz: far less.
MIX_LOSS_MARGIN_DB = 10.0


def _dbfs(rms: float) -> float:
    """Level in dB relative to full scale 1.0 (``-inf`` for 0)."""
    with np.errstate(divide="ignore"):
        return float(20.0 * np.log10(rms))


def _rms_dbfs(y: np.ndarray) -> float:
    """RMS level in dB relative to full scale 1.0 (``-inf`` for digital silence)."""
    return _dbfs(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def _cancelled_channels(audio: Audio, level: float, silence_dbfs: float) -> str | None:
    """Why a mix at ``level`` dBFS, below ``silence_dbfs``, is no silence: its file's channels cancel out."""
    if audio.channels_rms is None:
        return None
    channels = _dbfs(audio.channels_rms)
    if channels < silence_dbfs or level >= channels - 10.0 * np.log10(audio.channels) - MIX_LOSS_MARGIN_DB:
        return None
    mix = "every mixed sample is zero" if level == -np.inf else f"mix RMS {level:.1f} dBFS"
    why = f"{mix}, channels at {channels:.1f} dBFS (one channel phase-inverted?)"
    return f"channels cancel out when mixed to mono: {why}"


def quality_gate(
    audio: Audio, *, min_duration_s: float, max_duration_s: float, silence_dbfs: float, clipping_fraction: float
) -> tuple[str, ...]:
    """Refuse clips beyond full scale, non-finite, too short or long, silent, cancelled out, constant or clipped.

    Parameters
    ----------
    audio : Audio
        A decoded clip.
    min_duration_s, max_duration_s : float
        Accepted duration range.
    silence_dbfs : float
        Clips whose RMS is below this level (dBFS, full scale 1.0) are silence.
    clipping_fraction : float
        Largest accepted share of samples in flat tops.

    Returns
    -------
    tuple of str
        Soft flags of a clip that passes: ``"low_level"`` (RMS below -40 dBFS),
        ``"some_clipping"`` (flat tops, but no more than ``clipping_fraction``).

    Raises
    ------
    QualityError
        With the first failed check in the reason.
    """
    y = audio.samples
    peak = audio.peak if audio.peak is not None else float(np.max(np.abs(y), initial=0.0))
    if np.isfinite(peak) and peak > MAX_PEAK:  # checked first: resampling such samples can overflow to inf
        raise QualityError(
            f"samples beyond full scale: peak {peak:.3g}× ({20 * np.log10(peak):+.1f} dBFS, limit "
            f"{MAX_PEAK:g}×); float samples and WFDB physical values must be within ±1"
        )
    finite = np.isfinite(y)
    if not finite.all():
        n_nan = int(np.isnan(y).sum())
        raise QualityError(
            f"non-finite samples (NaN/inf) in decoded audio: {n_nan} NaN, {int((~finite).sum()) - n_nan} inf "
            f"of {len(y)} samples"
        )
    if audio.duration_s < min_duration_s:
        raise QualityError(f"clip too short: {audio.duration_s:.2f} s < {min_duration_s:g} s minimum (VOXFLOW_MIN_DURATION_S)")
    if audio.duration_s > max_duration_s:
        raise QualityError(f"clip too long: {audio.duration_s:.1f} s > {max_duration_s:.1f} s maximum (VOXFLOW_MAX_DURATION_S)")
    level = _rms_dbfs(y)
    if level < silence_dbfs and (cancelled := _cancelled_channels(audio, level, silence_dbfs)):
        raise QualityError(cancelled)
    if level == -np.inf:
        raise QualityError(f"silence: every sample is zero (digital silence, threshold {silence_dbfs:g} dBFS)")
    if level < silence_dbfs:
        raise QualityError(f"silence: RMS {level:.1f} dBFS below {silence_dbfs:g} dBFS")
    clipped = audio.clipped_fraction if audio.clipped_fraction is not None else flat_top_fraction(y)
    mean = float(np.mean(y, dtype=np.float64))
    if clipped == 1.0 and abs(mean) >= CONSTANT_MEAN_TO_PEAK * peak:  # not a square wave: one flat top, no swing
        raise QualityError(f"silence: every sample is {mean:.3g} (a constant DC offset, no sound)")
    if clipped > clipping_fraction:
        raise QualityError(
            f"clipped: {clipped:.1%} of samples in flat tops at the peak level (limit {clipping_fraction:.1%})"
        )
    flags = []
    if level < LOW_LEVEL_DBFS:
        flags.append("low_level")
    if clipped > 0:
        flags.append("some_clipping")
    return tuple(flags)
