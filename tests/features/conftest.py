"""Fixtures shared by the feature tests: the VOICED folder and a synthetic vowel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from features.synth import synth_vowel

# Property-based tests draw the same examples on every run (a failure reproduces, CI cannot flake)
# and keep no example database in the working tree.
settings.register_profile("voxflow", derandomize=True, database=None)
settings.load_profile("voxflow")

# tests/features/conftest.py -> repo root is parents[2]; ../shared sits beside the repo (also in CI).
VOICED_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "voiced"


@pytest.fixture(scope="session")
def voiced_dir() -> Path:
    if not VOICED_DIR.is_dir():
        pytest.skip(f"VOICED data not found at {VOICED_DIR}: ../shared is absent")
    return VOICED_DIR


@pytest.fixture
def vowel() -> np.ndarray:
    """Three seconds of a mildly perturbed /a/ at 150 Hz, 16 kHz, peak 0.5."""
    return synth_vowel(f0_hz=150.0, duration_s=3.0, jitter=0.01, shimmer=0.04, hnr_db=25.0)
