"""Shared by the feature tests: a synthetic vowel, and ``mono_audio`` (``voiced_dir`` comes from tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from features.audio import Audio
from features.synth import synth_vowel


@pytest.fixture
def vowel() -> np.ndarray:
    """Three seconds of a mildly perturbed /a/ at 150 Hz, 16 kHz, peak 0.5."""
    return synth_vowel(f0_hz=150.0, duration_s=3.0, jitter=0.01, shimmer=0.04, hnr_db=25.0)


def mono_audio(y: np.ndarray, sr: int = 16_000) -> Audio:
    """``y`` as a decoded mono clip at ``sr`` (as if read from a file at that rate), float32."""
    y = np.asarray(y, dtype=np.float32)
    return Audio(samples=y, sample_rate=sr, source_rate=sr, channels=1, duration_s=len(y) / sr)
