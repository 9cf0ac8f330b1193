"""Outcomes on labelled recordings: DeLong's AUC interval, Wilson's for proportions, verdicts against a card, groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from models.outcomes import (
    AS_EXPECTED, BETTER, MISSING_GROUP, NO_ESTIMATE, SKEWED, TOO_FEW, WORSE, Interval, Measured, Verification, auc_interval, card_intervals,
    groups_of, measure, proportion_interval, verdict, verification_corrected,
)

CARD = {"auc": 0.80, "sensitivity": 0.75, "specificity": 0.70, "uar": 0.725, "brier": 0.18}


def _delong_by_pairs(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong's variance from every positive-negative pair, straight from the definition (O(m n))."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives))


def _binormal(rng: np.random.Generator, n_pos: int, n_neg: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return labels, np.r_[rng.normal(shift, 1, n_pos), rng.normal(0, 1, n_neg)]


@pytest.mark.parametrize("rounded", [False, True])  # rounded scores tie, which the midranks must count half
def test_auc_interval_is_delongs_from_the_pairs(rounded: bool) -> None:
    labels, scores = _binormal(np.random.default_rng(3), 37, 23, 0.8)
    scores = np.round(scores, 1) if rounded else scores
    auc, variance = _delong_by_pairs(labels, scores)
    interval = auc_interval(labels, scores)
    half = norm.ppf(0.975) * math.sqrt(variance)
    assert interval.value == pytest.approx(auc) == pytest.approx(roc_auc_score(labels, scores))
    assert (interval.low, interval.high) == (pytest.approx(auc - half), pytest.approx(min(1.0, auc + half)))


def test_auc_interval_covers_the_true_auc_about_95_times_in_100() -> None:
    rng = np.random.default_rng(11)
    true_auc = norm.cdf(1.0 / math.sqrt(2))  # binormal, unit variances, means 1 apart
    draws = [auc_interval(*_binormal(rng, 40, 30, 1.0)) for _ in range(400)]
    covered = sum(d.low <= true_auc <= d.high for d in draws)
    assert 0.91 * 400 <= covered <= 0.985 * 400, covered


def test_complete_separation_is_an_interval_not_a_point() -> None:
    interval = auc_interval(np.r_[np.ones(12), np.zeros(30)], np.r_[np.linspace(0.6, 0.9, 12), np.linspace(0.1, 0.5, 30)])
    assert interval.value == 1.0 and interval.high == 1.0
    assert interval.low == pytest.approx(proportion_interval(12, 12).low) and interval.low < 0.8  # 12 positives say little


def test_proportion_interval_is_wilsons() -> None:
    z = norm.ppf(0.975)
    for k, n in ((8, 10), (0, 15), (15, 15), (37, 120)):
        interval = proportion_interval(k, n)
        p = k / n
        centre, half = (p + z**2 / (2 * n)) / (1 + z**2 / n), z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        assert (interval.value, interval.low, interval.high) == (p, pytest.approx(max(0, centre - half)), pytest.approx(min(1, centre + half)))
    assert proportion_interval(0, 15).low == 0 and proportion_interval(0, 15).high > 0.15  # none of 15 is not "never"


def test_a_verdict_needs_the_whole_interval_on_one_side_and_knows_which_side_is_worse() -> None:
    assert verdict("auc", Interval(0.70, 0.62, 0.78), 0.80) == WORSE
    assert verdict("auc", Interval(0.74, 0.66, 0.82), 0.80) == AS_EXPECTED
    assert verdict("auc", Interval(0.90, 0.85, 0.95), 0.80) == BETTER
    assert verdict("brier", Interval(0.25, 0.21, 0.29), 0.18) == WORSE  # a larger Brier score is worse
    assert verdict("brier", Interval(0.10, 0.08, 0.12), 0.18) == BETTER
    assert verdict("auc", None, 0.80) == TOO_FEW and verdict("auc", Interval(0.7, 0.6, 0.8), None) == NO_ESTIMATE


def test_a_verdict_weighs_the_cards_own_interval_as_the_difference_of_the_two() -> None:
    # MOVER: the live value less the card's, with the two intervals' lower and upper reaches joined in quadrature.
    live = Interval(0.70, 0.62, 0.78)
    assert verdict("auc", live, 0.80, Interval(0.80, 0.75, 0.85)) == WORSE  # -0.10 + hypot(0.08, 0.05) = -0.006 < 0
    assert verdict("auc", live, 0.80, Interval(0.80, 0.73, 0.87)) == AS_EXPECTED  # -0.10 + hypot(0.08, 0.07) = +0.006
    assert verdict("brier", Interval(0.25, 0.21, 0.29), 0.18, Interval(0.18, 0.15, 0.21)) == WORSE  # 0.07 - hypot(0.04, 0.03) = +0.02
    assert verdict("brier", Interval(0.25, 0.21, 0.29), 0.18, Interval(0.18, 0.12, 0.24)) == AS_EXPECTED  # 0.07 - hypot(0.04, 0.06) < 0


def test_the_cards_auc_interval_is_as_wide_as_an_auc_on_a_cohort_of_its_size_varies() -> None:
    # Hanley and McNeil's standard error against the spread of the AUC over 2,000 binormal cohorts of VOICED's size.
    rng = np.random.default_rng(7)
    shift = math.sqrt(2) * norm.ppf(0.675)  # a true AUC of 0.675
    spread = np.std([roc_auc_score(*_binormal(rng, 151, 57, shift)) for _ in range(2000)])
    card = card_intervals({"n": 208, "n_positive": 151, "auc": 0.675})["auc"]
    assert (card.high - card.low) / (2 * norm.ppf(0.975)) == pytest.approx(spread, rel=0.12), spread
    assert card_intervals({"auc": 0.675}) == {} and card_intervals({"n": 208, "n_positive": 0, "auc": 0.675}) == {}  # no cohort said


def test_a_model_as_good_as_its_card_is_called_worse_as_rarely_as_the_level_says_once_the_cards_cohort_counts() -> None:
    # The card's estimate is itself one cohort's (VOICED's 208); checked on 104 more recordings of the same population,
    # a model as good as its card should be called worse on a metric 2.5 times in 100 (one side of a 95 % interval).
    # Taken as exact, the card had it called worse about twice as often.
    rng = np.random.default_rng(13)
    shift = math.sqrt(2) * norm.ppf(0.675)
    worse = {(how, metric): 0 for how in ("weighed", "exact") for metric in ("auc", "sensitivity")}
    draws = 600
    for _ in range(draws):
        card_labels, card_scores = _binormal(rng, 151, 57, shift)
        card = {"n": 208, "n_positive": 151, "auc": roc_auc_score(card_labels, card_scores),
                "sensitivity": float(np.mean(card_scores[card_labels == 1] >= shift / 2))}
        labels, scores = _binormal(rng, 76, 28, shift)
        for how, expected in (("weighed", card), ("exact", {k: v for k, v in card.items() if k not in ("n", "n_positive")})):
            for metric in measure(labels, scores, scores >= shift / 2, expected).worse:
                worse[how, metric] += 1
    for metric in ("auc", "sensitivity"):
        assert worse["weighed", metric] <= 0.04 * draws and worse["exact", metric] >= 1.5 * worse["weighed", metric], worse


def test_a_model_no_better_than_chance_is_worse_than_its_card_and_one_like_it_is_not() -> None:
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(120, int), np.zeros(80, int)]
    chance = rng.uniform(size=200)
    found = measure(labels, chance, chance >= 0.5, CARD)
    assert found.metric("auc").verdict == WORSE and found.metric("auc").live.high < 0.80
    assert "auc" in found.worse and (found.n, found.n_positive) == (200, 120)

    _, scores = _binormal(rng, 120, 80, 1.19)  # a true AUC of 0.80, as the card says
    probabilities = 1 / (1 + np.exp(-(scores - 0.6)))
    like = measure(labels, probabilities, probabilities >= 0.5, CARD)
    assert like.metric("auc").verdict == AS_EXPECTED, like.metric("auc")
    sens = like.metric("sensitivity").live
    assert sens.value == pytest.approx(np.mean(probabilities[labels == 1] >= 0.5))


def test_metrics_use_the_models_own_labels_not_a_threshold_of_their_own() -> None:
    labels = np.r_[np.ones(20, int), np.zeros(20, int)]
    scores = np.r_[np.full(20, 0.6), np.full(20, 0.4)]
    everything_positive = measure(labels, scores, np.ones(40, bool), CARD)
    assert everything_positive.metric("sensitivity").live.value == 1.0 and everything_positive.metric("specificity").live.value == 0.0
    assert everything_positive.metric("uar").live.value == 0.5 and everything_positive.metric("auc").live.value == 1.0


def test_too_few_of_a_class_judges_only_what_the_other_class_allows() -> None:
    labels = np.r_[np.ones(30, int), np.zeros(4, int)]
    scores = np.linspace(0, 1, 34)
    found = measure(labels, scores, scores >= 0.5, CARD)
    by_name = {m.name: m.verdict for m in found.metrics}
    assert by_name["auc"] == by_name["specificity"] == by_name["uar"] == by_name["brier"] == TOO_FEW
    assert by_name["sensitivity"] != TOO_FEW and found.metric("auc").live is None
    nothing = measure(np.array([], int), np.array([]), np.array([], bool), CARD)
    assert nothing.n == 0 and {m.verdict for m in nothing.metrics} == {TOO_FEW} and nothing.worse == []


def test_a_card_without_an_estimate_gives_no_verdict_on_it() -> None:
    labels = np.r_[np.ones(15, int), np.zeros(15, int)]
    scores = np.linspace(0, 1, 30)
    found = measure(labels, scores, scores > 0.5, {"auc": 0.7, "brier": float("nan")})
    assert found.metric("sensitivity").verdict == NO_ESTIMATE and found.metric("brier").verdict == NO_ESTIMATE
    assert found.metric("auc").verdict != NO_ESTIMATE


def test_groups_are_values_or_quartile_bands_and_missing_ones_are_said() -> None:
    assert groups_of(["f", "M ", "", None]) == ["f", "M", MISSING_GROUP, MISSING_GROUP]
    assert groups_of([1, 2, 1, None]) == ["1", "2", "1", MISSING_GROUP]  # few values: each is a group
    ages = ["61", 18, 20.0, 35, 44, "52", 70, 29, None]  # a CSV's text, numbers, a float from a column with a gap
    bands = groups_of(ages)
    assert bands[-1] == MISSING_GROUP and len(set(bands[:-1])) == 4
    assert bands[1] == bands[2] == "18-20" and bands[6] == "61-70" and bands[0] == "61-70"
    assert groups_of(["a", 1, 2, 3, 4, 5, 6]) == ["a", "1", "2", "3", "4", "5", "6"]  # text among numbers: values, not bands


def test_uar_interval_joins_the_two_wilson_intervals_and_is_no_point_when_both_are_perfect() -> None:
    labels = np.r_[np.ones(20, int), np.zeros(25, int)]
    perfect = measure(labels, labels.astype(float), labels.astype(bool), CARD).metric("uar").live
    sens, spec = proportion_interval(20, 20), proportion_interval(25, 25)
    assert (perfect.value, perfect.high) == (1.0, 1.0) and perfect.low < 0.95
    assert perfect.low == pytest.approx(1 - math.hypot(1 - sens.low, 1 - spec.low) / 2)
    predicted = np.r_[np.arange(20) < 15, np.arange(25) < 5]  # 15 of 20 found, 20 of 25 cleared
    uar = measure(labels, labels.astype(float), predicted, CARD).metric("uar").live
    sens, spec = proportion_interval(15, 20), proportion_interval(20, 25)
    assert uar.value == pytest.approx(0.775)
    assert (uar.low, uar.high) == (pytest.approx(0.775 - math.hypot(0.75 - sens.low, 0.8 - spec.low) / 2),
                                   pytest.approx(0.775 + math.hypot(sens.high - 0.75, spec.high - 0.8) / 2))


def test_calibration_gives_each_bins_share_positive_its_interval_and_the_cards_rate() -> None:
    labels = np.r_[np.ones(30, int), np.zeros(30, int)]
    scores = np.r_[np.full(24, 0.75), np.full(6, 0.25), np.full(6, 0.75), np.full(24, 0.25)]
    card = {**CARD, "calibration": [{"bin_low": 0.7, "bin_high": 0.8, "n": 50, "mean_score": 0.74, "positive_rate": 0.9}]}
    rows = measure(labels, scores, scores >= 0.5, card).calibration
    assert [(round(row["bin_low"], 6), row["n"], row["positive_rate"]) for row in rows] == [(0.2, 30, 0.2), (0.7, 30, 0.8)]
    wilson = proportion_interval(24, 30)
    assert (rows[1]["positive_low"], rows[1]["positive_high"]) == (wilson.low, wilson.high)
    assert (rows[0]["cross_validated_rate"], rows[1]["cross_validated_rate"]) == (None, 0.9)  # the card had no 0.2 bin
    assert measure(labels, scores, scores >= 0.5, card).as_doc()["calibration"][1]["positive_low"] == round(wilson.low, 4)


def _screened(rng: np.random.Generator, n: int, audited: float) -> tuple[np.ndarray, np.ndarray, Verification]:
    """A screening of ``n`` (prevalence 0.3, true sensitivity 0.6, specificity 0.8): every flagged recording labelled, a
    share ``audited`` of the others. Returns the labelled ones' truth and flags, and the verification counts."""
    truth = rng.uniform(size=n) < 0.3
    flags = np.where(truth, rng.uniform(size=n) < 0.6, rng.uniform(size=n) < 0.2)
    labelled = flags | (rng.uniform(size=n) < audited)
    return truth[labelled], flags[labelled], Verification(int(flags.sum()), int((~flags).sum()), int(flags.sum()), int((labelled & ~flags).sum()))


def _corrected(truth: np.ndarray, flags: np.ndarray, verification: Verification, expected: dict) -> tuple[Measured, Measured]:
    found = verification_corrected(measure(truth, flags.astype(float), flags, expected), truth, flags, verification, expected)
    return found.metric("sensitivity_corrected"), found.metric("specificity_corrected")


def test_corrected_sensitivity_and_specificity_cover_the_truth_about_95_times_in_100_where_the_naive_ones_do_not() -> None:
    rng = np.random.default_rng(17)
    covered = {"sensitivity": 0, "specificity": 0, "naive sensitivity": 0}
    for _ in range(300):
        truth, flags, verification = _screened(rng, 2000, 0.1)
        sens, spec = _corrected(truth, flags, verification, {})
        covered["sensitivity"] += sens.live.low <= 0.6 <= sens.live.high
        covered["specificity"] += spec.live.low <= 0.8 <= spec.live.high
        naive = proportion_interval(int(flags[truth].sum()), int(truth.sum()))
        covered["naive sensitivity"] += naive.low <= 0.6 <= naive.high
    assert 0.91 * 300 <= covered["sensitivity"] <= 0.985 * 300 and 0.91 * 300 <= covered["specificity"] <= 0.985 * 300, covered
    assert covered["naive sensitivity"] == 0, covered  # the labelled alone: about 0.94, never near 0.6


def test_correction_needs_labels_among_both_the_flagged_and_the_others_and_is_judged_against_the_card() -> None:
    truth, flags, verification = _screened(np.random.default_rng(3), 600, 0.01)  # ~4 of ~400 others audited
    sens, spec = _corrected(truth, flags, verification, CARD)
    assert (sens.name, spec.name, sens.verdict, spec.verdict, sens.live) == ("sensitivity_corrected", "specificity_corrected", TOO_FEW, TOO_FEW, None)
    # No positive among 40 audited others: sensitivity 1, but an interval that reaches well below it (the misses were not seen).
    flags = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    truth = np.r_[np.ones(30, bool), np.zeros(30, bool), np.zeros(40, bool)]
    sens, spec = _corrected(truth, flags, Verification(60, 400, 60, 40), {**CARD, "n": 208, "n_positive": 151})
    assert sens.live.value == sens.live.high == 1.0 and sens.live.low < 0.8 and sens.verdict == AS_EXPECTED, sens
    assert spec.live.value == pytest.approx(400 / 430) and spec.verdict == BETTER and spec.expected_interval is not None, spec
    assert Verification(60, 400, 60, 400).complete and not Verification(60, 400, 60, 40).complete


def test_with_labels_skewed_to_the_flagged_only_the_corrected_sensitivity_specificity_and_uar_are_judged() -> None:
    # The labelled alone: sensitivity far above the truth, specificity below it (the referred false alarms): a weekly check
    # would have called the model worse on specificity, or better on sensitivity, on the referrals' account.
    truth, flags, verification = _screened(np.random.default_rng(5), 3000, 0.1)
    found = verification_corrected(measure(truth, flags.astype(float), flags, CARD), truth, flags, verification, {**CARD, "n": 208, "n_positive": 151})
    verdicts = {m.name: m.verdict for m in found.metrics}
    assert [verdicts[name] for name in ("sensitivity", "specificity", "uar")] == [SKEWED] * 3, verdicts
    assert verdicts["auc"] not in (SKEWED, TOO_FEW) and "uar_corrected" in verdicts and not set(found.worse) & {"sensitivity", "specificity", "uar"}
    uar = found.metric("uar_corrected").live
    assert uar.value == pytest.approx((found.metric("sensitivity_corrected").live.value + found.metric("specificity_corrected").live.value) / 2)
    assert found.metric("specificity").live.value < 0.7 < 0.8 and found.metric("specificity_corrected").live.low < 0.8 < found.metric("specificity_corrected").live.high
