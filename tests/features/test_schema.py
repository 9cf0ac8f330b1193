"""The feature schema: names, units, order, and agreement with what the modules compute."""

from __future__ import annotations

import re

from features.schema import FEATURE_NAMES, FEATURE_VERSION, FEATURES, N_MFCC
from features.spectral import SHAPE_NAMES, mfcc_names
from features.voice import VOICE_NAMES


def test_names_are_unique_snake_case_with_units_and_descriptions():
    assert len(FEATURES) == 52 and len(set(FEATURE_NAMES)) == 52
    assert FEATURE_NAMES == tuple(spec.name for spec in FEATURES)
    for spec in FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", spec.name), spec.name
        assert spec.unit in {"Hz", "st", "ratio", "us", "dB", "dBFS"}, spec.name
        assert spec.description, spec.name


def test_schema_covers_exactly_what_the_modules_compute():
    computed = [*VOICE_NAMES, "cpps_db", *mfcc_names(N_MFCC), *SHAPE_NAMES, "rms_mean_dbfs", "rms_std_db"]
    assert sorted(computed) == sorted(FEATURE_NAMES)


def test_version_is_a_positive_int():
    assert isinstance(FEATURE_VERSION, int) and FEATURE_VERSION >= 1
