"""The feature schema: names, units, order, and agreement with what the modules compute."""

from __future__ import annotations

import re

from features.formants import FORMANT_NAMES
from features.schema import FEATURE_NAMES, FEATURE_VERSION, FEATURES, N_MFCC
from features.spectral import LEVEL_NAMES, SHAPE_NAMES, mfcc_names
from features.voice import VOICE_NAMES

UNITS = {"Hz", "st", "ratio", "count", "us", "dB", "dBFS", "dB/kHz", "au", "log10 st2", "log10"}


def test_names_are_unique_snake_case_with_units_and_descriptions():
    assert len(FEATURES) == 89 and len(set(FEATURE_NAMES)) == 89
    assert FEATURE_NAMES == tuple(spec.name for spec in FEATURES)
    for spec in FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", spec.name), spec.name
        assert spec.unit in UNITS, spec.name
        assert spec.description, spec.name


def test_schema_covers_exactly_what_the_modules_compute():
    computed = [*VOICE_NAMES, "cpps_db", *FORMANT_NAMES, *mfcc_names(N_MFCC), *SHAPE_NAMES, *LEVEL_NAMES]
    assert len(computed) == len(set(computed))
    assert sorted(computed) == sorted(FEATURE_NAMES)


def test_version_is_4():
    assert FEATURE_VERSION == 4
