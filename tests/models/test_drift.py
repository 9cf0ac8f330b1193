"""Input drift: training profiles, a run's tally, and the PSI + chi-square comparison."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import chi2, chi2_contingency

from models.artifact import ModelCard
from models.drift import MIN_ROWS, InputTally, bin_counts, chi2_sf, combined, compare, input_profile, profile_counts

NAMES = ("f0_mean_hz", "jitter_local", "voice_breaks")


def _training(rng: np.random.Generator, n: int = 208) -> np.ndarray:
    rows = np.column_stack([rng.normal(150, 30, n), rng.lognormal(-5, 0.4, n), rng.poisson(0.3, n).astype(float)])
    rows[rng.random(n) < 0.1, :2] = np.nan  # unvoiced clips: no F0, no jitter
    return rows


def _tally(profile: dict, rows: np.ndarray, version: str = "m1", reads: tuple[str, ...] = ()) -> InputTally:
    tally = InputTally(profile, version, reads=reads)
    for chunk in np.array_split(rows, 3):  # chunk by chunk, counted on the workers
        tally.add(profile_counts(profile, chunk, NAMES), len(chunk))
    return tally


def test_bins_count_every_value_once_missing_last() -> None:
    values = np.array([-1.0, 0.0, 0.5, 1.0, 7.0, np.nan, np.inf])
    assert bin_counts([0.0, 1.0], values).tolist() == [1, 2, 2, 2]
    assert bin_counts([], values).tolist() == [5, 2]


def test_profile_is_deciles_of_the_present_values_and_plain_json() -> None:
    rows = _training(np.random.default_rng(0))
    profile = json.loads(json.dumps(input_profile(rows, NAMES)))
    f0 = profile["features"]["f0_mean_hz"]
    present = rows[np.isfinite(rows[:, 0]), 0]
    assert f0["edges"] == pytest.approx(np.quantile(present, np.arange(1, 10) / 10).tolist())
    assert sum(f0["counts"]) == 208 and f0["counts"][-1] == len(rows) - len(present)
    # A count feature that is mostly 0 gets the edges its ties leave, not nine equal ones.
    breaks = profile["features"]["voice_breaks"]
    assert len(breaks["edges"]) < 9 and breaks["edges"] == sorted(set(breaks["edges"]))
    assert profile["n"] == 208


def test_closed_form_chi_square_tail_matches_scipy() -> None:
    for dof in range(1, 13):
        for statistic in (0.0, 0.01, 0.7, 3.0, 11.0, 40.0, 200.0):
            assert chi2_sf(statistic, dof) == pytest.approx(chi2.sf(statistic, dof), rel=1e-9, abs=1e-300)


def test_same_population_is_not_called_shifted_even_with_large_psi_noise() -> None:
    rng = np.random.default_rng(1)
    alarms, psis = 0, []
    for _ in range(100):
        profile = input_profile(_training(rng), NAMES)
        report = compare(_tally(profile, _training(rng, 40)), psi_limit=0.25, alpha=0.01)
        alarms += bool(report.shifted)
        psis.append(report.largest[0].psi)
    # 40 rows give PSI above the 0.25 limit by chance alone in most runs: the test is what keeps them quiet.
    assert np.mean(np.array(psis) >= 0.25) > 0.3
    assert alarms <= 3


def test_a_shifted_feature_is_named_with_the_bin_that_moved() -> None:
    rng = np.random.default_rng(2)
    profile = input_profile(_training(rng), NAMES)
    run = _training(rng, 60)
    run[:, 0] += 120  # every voice an octave up
    report = compare(_tally(profile, run), psi_limit=0.25, alpha=0.01)
    assert [s.feature for s in report.shifted] == ["f0_mean_hz"]
    shift = report.shifted[0]
    assert shift.bin.startswith("≥ ") and shift.bin.endswith(" Hz") and shift.share > 0.8 and shift.training_share == pytest.approx(0.09, abs=0.02)
    assert report.n == 60 and report.training_n == 208 and report.checked == 3
    assert report.line().startswith("1 of 3 features shifted from the training data of m1 (60 files): f0_mean_hz ")
    doc = json.loads(json.dumps(report.as_doc()))
    assert doc["shifted_count"] == 1 and doc["shifted"][0]["feature"] == "f0_mean_hz" and doc["summary"] == report.line()


def test_shifts_of_the_features_the_model_reads_are_named_first() -> None:
    rng = np.random.default_rng(7)
    profile = input_profile(_training(rng), NAMES)
    run = _training(rng, 60)
    run[:, 0] += 120  # a large shift of a feature the model does not read
    run[:, 1] *= 1.6  # a smaller one of the one it reads
    report = compare(_tally(profile, run, reads=("jitter_local",)), psi_limit=0.25, alpha=0.01)
    assert [s.feature for s in report.shifted] == ["jitter_local", "f0_mean_hz"] and report.shifted[0].psi < report.shifted[1].psi
    assert report.shifted_read == 1 and report.line().startswith("2 of 3 features shifted from the training data of m1, 1 of the 1 it reads (60 files): jitter_local ")
    assert report.as_doc()["shifted_read"] == 1


def test_a_tally_is_made_for_a_card_with_a_profile_only() -> None:
    rng = np.random.default_rng(8)
    card = ModelCard(
        version="m9", feature_version=4, feature_names=NAMES, threshold=0.5, booster_sha256="0" * 64, created_at="2026-12-07T00:00:00+00:00",
        training={"selected_features": ["jitter_local"]}, input_profile=input_profile(_training(rng), NAMES),
    )
    tally = InputTally.of(card)
    assert (tally.model_version, tally.reads, tally.n) == ("m9", ("jitter_local",), 0)
    assert InputTally.of(replace(card, input_profile={})) is None  # a card saved before profiles: not checked


def test_missing_values_moving_is_a_shift_too() -> None:
    rng = np.random.default_rng(3)
    profile = input_profile(_training(rng), NAMES)
    run = _training(rng, 80)
    run[:60, :2] = np.nan  # most clips unvoiced: a whispered or noisy batch
    shifted = {s.feature: s for s in compare(_tally(profile, run), psi_limit=0.25, alpha=0.01).shifted}
    assert set(shifted) == {"f0_mean_hz", "jitter_local"} and shifted["f0_mean_hz"].bin == "missing"


def test_the_chi_square_p_value_is_the_two_sample_tests() -> None:
    rng = np.random.default_rng(4)
    profile = input_profile(_training(rng), NAMES)
    run = _training(rng, 50)
    run[:, 1] *= 1.5
    tally = _tally(profile, run)
    shift = next(s for s in compare(tally, psi_limit=0.25, alpha=0.01).largest if s.feature == "jitter_local")
    table = np.array([profile["features"]["jitter_local"]["counts"], tally.counts["jitter_local"]])
    assert shift.p_value == pytest.approx(chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False).pvalue, rel=1e-2)


def test_too_few_rows_are_reported_not_judged() -> None:
    rng = np.random.default_rng(5)
    profile = input_profile(_training(rng), NAMES)
    run = _training(rng, MIN_ROWS - 1)
    run[:, 0] += 500
    report = compare(_tally(profile, run), psi_limit=0.25, alpha=0.01)
    # Nor is any feature's share kept: from a run of one recording, the run document would describe that recording.
    assert report.too_few and not report.shifted and report.largest == [] and report.as_doc()["shifted"] == []
    assert report.line() == f"not compared: {MIN_ROWS - 1} files scored, a comparison with the training data needs at least {MIN_ROWS}"


def test_a_chunk_is_counted_by_name_whatever_its_column_order() -> None:
    rng = np.random.default_rng(9)
    rows = _training(rng)
    profile = input_profile(rows, NAMES)
    reordered = profile_counts(profile, rows[:, ::-1], NAMES[::-1])
    assert {name: counts.tolist() for name, counts in reordered.items()} == {name: spec["counts"] for name, spec in profile["features"].items()}


def test_a_drains_batches_add_up_per_model() -> None:
    rng = np.random.default_rng(6)
    profile = input_profile(_training(rng), NAMES)
    first, then = _tally(profile, _training(rng, 10)), _tally(profile, _training(rng, 15))
    both = combined(first, then)
    assert both.n == 25 and all((both.counts[n] == first.counts[n] + then.counts[n]).all() for n in NAMES)
    other = _tally(profile, _training(rng, 5), version="m2")
    assert combined(both, other) is other and combined(both, None) is both and combined(None, other) is other
