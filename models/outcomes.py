"""How a model does on the recordings it scored once their reference labels arrive: each metric with a 95%
confidence interval, judged against the model card's cross-validated estimate. Pure: arrays in, verdicts out.

A cross-validated AUC is an estimate made on the training cohort. Labels that arrive later (a clinician's
diagnosis, a follow-up) say how the model does on the recordings it actually screens. Both are estimates from
samples: the card's from its cohort (its ``n`` recordings, ``n_positive`` of them positive), the live one from the
labelled recordings. The model is worse than its card claims only where the interval of their difference lies
wholly on the wrong side of zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import norm, rankdata

from models.calibration import calibration_table

MIN_PER_CLASS = 10  # fewer positives (or negatives) give intervals too wide to judge anything
LEVEL = 0.95
WORSE, BETTER, AS_EXPECTED, TOO_FEW, NO_ESTIMATE = "worse", "better", "as expected", "too few", "no estimate"
SKEWED = "labels skewed"  # not judged: labels arrived for the flagged more than the others (see the _corrected metrics)
_SKEWED_BY_FLAG = ("sensitivity", "specificity", "uar")
MAX_BANDS = 4  # a numeric field of many values (an age) is split at its quartiles
_LOWER_IS_BETTER = frozenset({"brier"})
METRICS = ("auc", "sensitivity", "specificity", "uar", "brier")
MISSING_GROUP = "(none)"


@dataclass(frozen=True)
class Interval:
    """A metric's value on the labelled recordings and its confidence interval."""

    value: float
    low: float
    high: float

    def text(self) -> str:
        """``0.712 (0.553-0.871)``."""
        return f"{self.value:.3f} ({self.low:.3f}-{self.high:.3f})"


@dataclass(frozen=True)
class Measured:
    """One metric: its interval on the labelled recordings (None: too few of a class), the card's estimate, the verdict."""

    name: str
    live: Interval | None
    expected: float | None
    verdict: str
    expected_interval: Interval | None = None  # the card's estimate with the interval its cohort's size allows

    def expected_text(self) -> str:
        """The card's estimate, with its interval where the card says its cohort's size: ``0.675 (0.593-0.757)``."""
        if self.expected is None:
            return "-"
        return self.expected_interval.text() if self.expected_interval is not None else f"{self.expected:.3f}"

    def as_doc(self) -> dict[str, Any]:
        live, card = (None if i is None else {k: round(v, 4) for k, v in i.__dict__.items()} for i in (self.live, self.expected_interval))
        return {"metric": self.name, "live": live, "expected": self.expected, "expected_interval": card, "verdict": self.verdict}


@dataclass(frozen=True)
class Outcomes:
    """The metrics of one set of labelled recordings."""

    n: int
    n_positive: int
    metrics: tuple[Measured, ...]
    # Per score bin: recordings, mean score, the share positive and its Wilson interval (:func:`calibration`).
    calibration: tuple[dict[str, float | int | None], ...] = ()

    @property
    def worse(self) -> list[str]:
        """The metrics judged worse than the card says (:func:`verdict`)."""
        return [m.name for m in self.metrics if m.verdict == WORSE]

    def metric(self, name: str) -> Measured:
        return next(m for m in self.metrics if m.name == name)

    def as_doc(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_positive": self.n_positive, "worse": self.worse, "metrics": [m.as_doc() for m in self.metrics],
            "calibration": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in self.calibration],
        }


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def _clipped(value: float, half_width: float) -> Interval:
    return Interval(value, max(0.0, value - half_width), min(1.0, value + half_width))


def auc_interval(labels: np.ndarray, scores: np.ndarray, *, level: float = LEVEL) -> Interval:
    """ROC AUC with DeLong's confidence interval (the fast midrank form of Sun and Xu, 2014).

    Where the classes are completely separated (AUC 0 or 1) DeLong's variance is 0; the interval is then Wilson's
    for as many trials as the smaller class has recordings, all successes (or none), rather than a point.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n,)`` 1 for positive, 0 for negative; both present.
    scores : numpy.ndarray
        ``(n,)`` the model's scores, higher meaning positive.

    Examples
    --------
    >>> auc_interval(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])).value
    0.75
    """
    labels = np.asarray(labels).astype(bool)
    positives, negatives = np.asarray(scores, dtype=np.float64)[labels], np.asarray(scores, dtype=np.float64)[~labels]
    m, n = len(positives), len(negatives)
    together = rankdata(np.concatenate([positives, negatives]))
    above = (together[:m] - rankdata(positives)) / n  # per positive: the share of negatives it outranks (ties half)
    below = 1.0 - (together[m:] - rankdata(negatives)) / m  # per negative: the share of positives that outrank it
    auc = float(above.mean())
    if auc in (0.0, 1.0):
        separated = proportion_interval(int(auc) * min(m, n), min(m, n), level=level)
        return Interval(auc, separated.low, separated.high)
    variance = (np.var(above, ddof=1) / m if m > 1 else 0.0) + (np.var(below, ddof=1) / n if n > 1 else 0.0)
    return _clipped(auc, _z(level) * math.sqrt(variance))


def proportion_interval(successes: int, trials: int, *, level: float = LEVEL) -> Interval:
    """A proportion with Wilson's score interval (sound at 0 and 1, unlike the normal one).

    Examples
    --------
    >>> round(proportion_interval(8, 10).low, 3), round(proportion_interval(8, 10).high, 3)
    (0.49, 0.943)
    """
    return _wilson(successes / trials, trials, level)


def _wilson(p: float, trials: int, level: float) -> Interval:
    z = _z(level)
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def _uar_interval(sensitivity: Interval, specificity: Interval) -> Interval:
    """Their mean's interval from their Wilson intervals (MOVER, Zou and Donner 2008): sound where either is 0 or 1."""
    value = (sensitivity.value + specificity.value) / 2
    down = math.hypot(sensitivity.value - sensitivity.low, specificity.value - specificity.low) / 2
    up = math.hypot(sensitivity.high - sensitivity.value, specificity.high - specificity.value) / 2
    return Interval(value, max(0.0, value - down), min(1.0, value + up))


def _brier_interval(squared: np.ndarray, level: float) -> Interval:
    return _clipped(float(squared.mean()), _z(level) * float(squared.std(ddof=1)) / math.sqrt(len(squared)))


def calibration(
    labels: np.ndarray, scores: np.ndarray, *, level: float = LEVEL, expected: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, float | int | None]]:
    """:func:`models.calibration.calibration_table` with each bin's share positive given its Wilson interval
    (``positive_low``, ``positive_high``) and the share in that bin of the card's out-of-fold scores (``expected``, a
    card's ``metrics["calibration"]``; ``cross_validated_rate``, None where it had none): a score means what it says
    where the interval holds the mean score.

    Examples
    --------
    >>> [(row["n"], row["positive_rate"]) for row in calibration(np.array([0, 1, 1]), np.array([0.2, 0.25, 0.9]))]
    [(2, 0.5), (1, 1.0)]
    """
    rows: list[dict[str, float | int | None]] = list(calibration_table(labels, scores))
    trained = {round(float(row["bin_low"]), 6): row.get("positive_rate") for row in expected}
    for row in rows:
        observed = proportion_interval(round(float(row["positive_rate"]) * int(row["n"])), int(row["n"]), level=level)
        row.update(positive_low=observed.low, positive_high=observed.high, cross_validated_rate=trained.get(round(float(row["bin_low"]), 6)))
    return rows


def card_intervals(expected: Mapping[str, Any], *, level: float = LEVEL, brier_sd: float | None = None) -> dict[str, Interval]:
    """The card's estimates with the intervals a cohort of its size allows (its ``n`` and ``n_positive``; none
    without them): AUC with Hanley and McNeil's (1982) standard error, sensitivity and specificity with Wilson's
    for the cohort's positives and negatives, UAR the MOVER of those two, and Brier with ``brier_sd`` (the
    spread of the squared errors, taken from the live recordings: the card keeps none of its own).

    A repeated cross-validation's mean varies less from fold draw to fold draw than its folds do (``auc_std``), but
    no less than a single estimate on a cohort of that size varies from cohort to cohort: that sampling is what
    these intervals hold.

    Examples
    --------
    >>> {k: i.text() for k, i in card_intervals({"n": 208, "n_positive": 151, "auc": 0.675, "sensitivity": 0.5}).items()}
    {'auc': '0.675 (0.598-0.752)', 'sensitivity': '0.500 (0.421-0.579)'}
    """
    n, n_pos = expected.get("n"), expected.get("n_positive")
    if not (isinstance(n, int) and isinstance(n_pos, int) and 0 < n_pos < n):
        return {}
    n_neg = n - n_pos
    estimates = {name: float(v) for name in METRICS if isinstance(v := expected.get(name), (int, float)) and math.isfinite(v)}
    intervals: dict[str, Interval] = {}
    if (auc := estimates.get("auc")) is not None and 0.0 < auc < 1.0:
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
        variance = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
        intervals["auc"] = _clipped(auc, _z(level) * math.sqrt(variance))
    for name, trials in (("sensitivity", n_pos), ("specificity", n_neg)):
        if (value := estimates.get(name)) is not None:
            intervals[name] = _wilson(value, trials, level)
    if "uar" in estimates and "sensitivity" in intervals and "specificity" in intervals:
        uar = _uar_interval(intervals["sensitivity"], intervals["specificity"])
        intervals["uar"] = Interval(estimates["uar"], max(0.0, estimates["uar"] - (uar.value - uar.low)), min(1.0, estimates["uar"] + (uar.high - uar.value)))
    if (brier := estimates.get("brier")) is not None and brier_sd is not None:
        intervals["brier"] = _clipped(brier, _z(level) * brier_sd / math.sqrt(n))
    return intervals


def verdict(name: str, live: Interval | None, expected: float | None, card: Interval | None = None) -> str:
    """``worse`` or ``better`` when the interval of the live value less the card's estimate lies wholly on one side of
    zero (MOVER, Zou and Donner 2008, from the two intervals; a card without one counts as exact), else ``as expected``.

    Examples
    --------
    >>> verdict("auc", Interval(0.6, 0.52, 0.68), 0.75), verdict("brier", Interval(0.3, 0.26, 0.34), 0.2)
    ('worse', 'worse')
    >>> verdict("auc", Interval(0.6, 0.52, 0.68), 0.75, card=Interval(0.75, 0.62, 0.88))
    'as expected'
    """
    if live is None:
        return TOO_FEW
    if expected is None:
        return NO_ESTIMATE
    card = card or Interval(expected, expected, expected)
    low = live.value - card.value - math.hypot(live.value - live.low, card.high - card.value)
    high = live.value - card.value + math.hypot(live.high - live.value, card.value - card.low)
    above, below = low > 0, high < 0
    if not (above or below):
        return AS_EXPECTED
    return WORSE if below != (name in _LOWER_IS_BETTER) else BETTER


def _judged(name: str, live: Interval | None, expected: Mapping[str, Any], cards: Mapping[str, Interval], *, shown_as: str | None = None) -> Measured:
    """``live``, metric ``name`` on the labelled recordings, judged against the card's estimate of it and that estimate's interval."""
    reference = expected.get(name)
    reference = float(reference) if isinstance(reference, (int, float)) and math.isfinite(reference) else None
    card = cards.get(name) if reference is not None else None
    return Measured(shown_as or name, live, reference, verdict(name, live, reference, card), card)


def measure(
    labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray, expected: Mapping[str, Any], *,
    min_per_class: int = MIN_PER_CLASS, level: float = LEVEL,
) -> Outcomes:
    """Each of :data:`METRICS` on labelled recordings, judged against ``expected`` (a card's ``metrics``).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n,)`` the reference labels, 1 positive.
    scores : numpy.ndarray
        ``(n,)`` the model's scores.
    predicted : numpy.ndarray
        ``(n,)`` the labels the model gave (its score against its threshold), 1 positive.
    expected : Mapping
        The cross-validated estimates by metric name; a missing one is ``no estimate``.
    min_per_class : int
        Fewer positives or negatives than this leave the metrics that need them ``too few``.
    """
    labels, scores, predicted = (np.asarray(a) for a in (labels, scores, predicted))
    labels, predicted = labels.astype(bool), predicted.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    enough_pos, enough_neg = n_pos >= min_per_class, n_neg >= min_per_class
    sens = proportion_interval(int(predicted[labels].sum()), n_pos, level=level) if enough_pos else None
    spec = proportion_interval(int((~predicted[~labels]).sum()), n_neg, level=level) if enough_neg else None
    both = enough_pos and enough_neg
    squared = (scores.astype(np.float64) - labels) ** 2
    live = {
        "auc": auc_interval(labels, scores, level=level) if both else None,
        "sensitivity": sens,
        "specificity": spec,
        "uar": _uar_interval(sens, spec) if sens and spec else None,
        "brier": _brier_interval(squared, level) if both else None,
    }
    cards = card_intervals(expected, level=level, brier_sd=float(squared.std(ddof=1)) if both else None)
    measured = [_judged(name, live[name], expected, cards) for name in METRICS]
    bins = calibration(labels, scores, level=level, expected=expected.get("calibration") or ()) if len(labels) else []
    return Outcomes(len(labels), n_pos, tuple(measured), tuple(bins))


@dataclass(frozen=True)
class Verification:
    """Who got a reference label: the recordings the model screened (flagged or not) and how many of each are labelled.

    A screening programme sends the flagged to a specialist and at most a sample of the others: labels then measure
    the model on the flagged mostly, and its sensitivity looks better than it is (the misses go undiagnosed).
    """

    flagged: int
    unflagged: int
    flagged_labelled: int
    unflagged_labelled: int

    @classmethod
    def of(cls, screened: int, flagged: int, flagged_labelled: int, unflagged_labelled: int) -> Verification:
        """From ``screened`` recordings, ``flagged`` of them, as counted apart from the labels (a rollup, which can lag
        them: a prediction stored without a threshold counts as not flagged there): never fewer than are labelled.

        Examples
        --------
        >>> Verification.of(200, 0, 105, 95)
        Verification(flagged=105, unflagged=95, flagged_labelled=105, unflagged_labelled=95)
        """
        flagged = max(flagged, flagged_labelled)
        return cls(flagged, max(screened - flagged, unflagged_labelled), flagged_labelled, unflagged_labelled)

    @property
    def complete(self) -> bool:
        """Every screened recording is labelled: nothing to correct."""
        return self.flagged_labelled >= self.flagged and self.unflagged_labelled >= self.unflagged

    def text(self) -> str:
        """``labels for 120 of the 300 it flagged (40%) and 30 of the 900 it did not (3.3%)``."""
        def share(labelled: int, screened: int) -> str:
            return f"{labelled} of the {screened}" + (f" ({labelled / screened:.1%})" if screened else "")

        return f"labels for {share(self.flagged_labelled, self.flagged)} it flagged and {share(self.unflagged_labelled, self.unflagged)} it did not"

    def as_doc(self) -> dict[str, int]:
        return dict(self.__dict__)


def verification_corrected(
    outcomes: Outcomes, labels: np.ndarray, predicted: np.ndarray, verification: Verification, expected: Mapping[str, Any], *,
    min_labelled: int = MIN_PER_CLASS, level: float = LEVEL,
) -> Outcomes:
    """``outcomes`` with sensitivity, specificity and UAR corrected for who got a label (Begg and Greenes 1983) added as
    ``*_corrected`` and judged against the card, and the uncorrected ones left unjudged (:data:`SKEWED`).

    Valid where the chance of a label depends on the model's flag alone (every flagged recording referred, a random
    sample of the others audited): the labelled recordings then give the share positive among the flagged and among
    the others, and the screened counts give how many were flagged. Intervals on the logit scale with Begg and
    Greenes' delta-method variance (half a recording added to an empty cell); UAR's, the MOVER of those two.

    Parameters
    ----------
    outcomes : Outcomes
        :func:`measure` of the labelled recordings.
    labels, predicted : numpy.ndarray
        ``(n,)`` the labelled recordings' reference labels and the model's flags, 1 positive.
    verification : Verification
        The screened counts, flagged and not, of which these are the labelled.
    min_labelled : int
        Fewer labelled recordings among the flagged, or among the others, leave the corrected ones ``too few``.

    Examples
    --------
    >>> labels, flags = np.r_[np.ones(60), np.zeros(40), np.ones(5), np.zeros(45)], np.r_[np.ones(100), np.zeros(50)]
    >>> found = verification_corrected(measure(labels, flags, flags, {}), labels, flags, Verification(100, 500, 100, 50), {})
    >>> [(m.name, round(m.live.value, 3)) for m in found.metrics if m.name.endswith("_corrected")]  # 60 of 100 flagged positive; 1 in 10 of 500 others
    [('sensitivity_corrected', 0.545), ('specificity_corrected', 0.918), ('uar_corrected', 0.732)]
    >>> found.metric("sensitivity").verdict, round(found.metric("sensitivity").live.value, 3)
    ('labels skewed', 0.923)
    """
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    n1, n0 = int(predicted.sum()), int((~predicted).sum())
    cards = card_intervals(expected, level=level)
    live: dict[str, Interval | None] = dict.fromkeys(_SKEWED_BY_FLAG)
    if n1 >= min_labelled and n0 >= min_labelled:
        d1, d0 = int(labels[predicted].sum()), int(labels[~predicted].sum())
        live["sensitivity"] = _begg_greenes(True, d1, n1, d0, n0, verification, level)
        live["specificity"] = _begg_greenes(False, d1, n1, d0, n0, verification, level)
        live["uar"] = _uar_interval(live["sensitivity"], live["specificity"])
    corrected = [_judged(name, live[name], expected, cards, shown_as=f"{name}_corrected") for name in _SKEWED_BY_FLAG]
    kept = tuple(replace(m, verdict=SKEWED) if m.name in _SKEWED_BY_FLAG and m.live is not None else m for m in outcomes.metrics)
    return replace(outcomes, metrics=kept + tuple(corrected))


def _begg_greenes(sensitivity: bool, d1: int, n1: int, d0: int, n0: int, verification: Verification, level: float) -> Interval:
    screened = verification.flagged + verification.unflagged
    flagged = verification.flagged / screened

    def corrected(d1: float, n1: float, d0: float, n0: float) -> float:
        p1, p0 = d1 / n1, d0 / n0
        hit, miss = (flagged * p1, (1 - flagged) * p0) if sensitivity else ((1 - flagged) * (1 - p0), flagged * (1 - p1))
        return hit / (hit + miss)  # P(flagged | positive), or P(not flagged | negative)

    value = corrected(d1, n1, d0, n0)
    if not (0 < d1 < n1 and 0 < d0 < n0):  # an empty cell: the interval from half a recording added to each
        d1, n1, d0, n0 = d1 + 0.5, n1 + 1, d0 + 0.5, n0 + 1
    p1, p0 = d1 / n1, d0 / n0
    # The logit's variance (Begg and Greenes 1983): the flagged share's, and each kind's share positive among the labelled.
    variance = 1 / (screened * flagged * (1 - flagged)) + (
        (1 - p1) / (n1 * p1) + (1 - p0) / (n0 * p0) if sensitivity else p0 / (n0 * (1 - p0)) + p1 / (n1 * (1 - p1))
    )
    centre = corrected(d1, n1, d0, n0)
    logit, half = math.log(centre / (1 - centre)), _z(level) * math.sqrt(variance)
    low, high = 1 / (1 + math.exp(half - logit)), 1 / (1 + math.exp(-half - logit))
    return Interval(value, min(low, value), max(high, value))


def groups_of(values: Sequence[Any], *, max_bands: int = MAX_BANDS) -> list[str]:
    """Each recording's group by one metadata field: its value, or for a numeric field of more values than
    ``max_bands``, its quartile band (``32-47``); :data:`MISSING_GROUP` where the field is missing.

    Examples
    --------
    >>> groups_of(["f", "m", None, "f"])
    ['f', 'm', '(none)', 'f']
    >>> groups_of([18, 25, 33, 41, 52, 60, 70, 80])
    ['18-25', '18-25', '33-41', '33-41', '52-60', '52-60', '70-80', '70-80']
    """
    numbers = [_number(v) for v in values]
    present = sorted({x for x in numbers if x is not None})
    if len(present) <= max_bands or any(x is None and v is not None for x, v in zip(numbers, values)):
        return [MISSING_GROUP if v is None or v == "" else str(v).strip() for v in values]
    edges = np.quantile(np.array([x for x in numbers if x is not None]), np.linspace(0, 1, max_bands + 1)[1:-1])
    band = {x: int(np.searchsorted(edges, x, side="left")) for x in present}
    spans: dict[int, list[float]] = {}
    for x in present:
        spans.setdefault(band[x], []).append(x)
    names = {b: f"{_plain(min(xs))}-{_plain(max(xs))}" for b, xs in spans.items()}
    return [MISSING_GROUP if x is None else names[band[x]] for x in numbers]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _plain(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
