"""Input drift: how far the recordings a run scored are from those its model was trained on.

A model card carries an input profile (:func:`input_profile`): for each feature, the training values' decile edges
and how many training rows fell in each bin, a missing value (no F0 in an unvoiced clip) being a bin of its own.
A run counts its scored rows into the same bins (:class:`InputTally`) and :func:`compare` weighs the two per
feature: the population stability index (PSI) says how large a shift is, a chi-square test of the two samples'
counts whether it is more than the noise of a small batch. A feature has shifted when both say so.

A new microphone, another sample rate, a noisy room or a task other than a sustained vowel moves the features
a screening model reads; its scores are then no evidence, however confident they look.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from features.schema import FEATURES
from models.artifact import ModelCard

PROFILE_BINS = 10  # deciles of the training values
PSEUDO_COUNT = 0.5  # per bin, so that a bin empty on one side gives a finite PSI
SHOWN = 5  # shifted features a report names
MIN_ROWS = 30  # below this a PSI is mostly noise, whatever the test says
_UNITS = {spec.name: spec.unit for spec in FEATURES}


def bin_counts(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """How many ``values`` fall in each bin that ``edges`` bound, and how many are missing.

    Parameters
    ----------
    edges : sequence of float, increasing
        Interior bin edges; bin ``i`` holds ``edges[i-1] <= value < edges[i]``.
    values : np.ndarray, shape (n,)
        NaN (or infinity) counts as missing.

    Returns
    -------
    np.ndarray, shape (len(edges) + 2,)
        Counts per bin, lowest first, then the missing count.

    Examples
    --------
    >>> bin_counts([1.0, 2.0], np.array([0.5, 1.0, 1.5, 3.0, np.nan])).tolist()
    [1, 2, 1, 1]
    """
    present = np.isfinite(values)
    placed = np.searchsorted(np.asarray(edges, dtype=np.float64), values[present], side="right")
    return np.append(np.bincount(placed, minlength=len(edges) + 1), np.count_nonzero(~present))


def input_profile(features: np.ndarray, names: Sequence[str], *, bins: int = PROFILE_BINS) -> dict[str, Any]:
    """The profile of a training feature matrix, as a model card stores it (plain JSON).

    Parameters
    ----------
    features : np.ndarray, shape (n, len(names))
        Training rows; NaN marks a missing value.
    names : sequence of str
        The column names.
    bins : int
        Quantile bins per feature; ties (a feature that is mostly 0) merge edges, so some features get fewer.

    Returns
    -------
    dict
        ``{"n": rows, "features": {name: {"edges": [...], "counts": [...]}}}``.
    """
    profile: dict[str, Any] = {"n": int(len(features)), "features": {}}
    for j, name in enumerate(names):
        column = np.asarray(features[:, j], dtype=np.float64)
        present = column[np.isfinite(column)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.empty(0)
        profile["features"][name] = {"edges": edges.tolist(), "counts": bin_counts(edges, column).tolist()}
    return profile


class InputTally:
    """A run's scored rows counted into a model's profile bins, chunk by chunk; ``reads`` names the features its
    booster uses (those shifts are named first)."""

    def __init__(self, profile: Mapping[str, Any], model_version: str, *, reads: Sequence[str] = ()) -> None:
        self.profile = profile
        self.model_version = model_version
        self.reads = tuple(reads)
        self.n = 0
        self.counts = {name: np.zeros(len(spec["counts"]), dtype=np.int64) for name, spec in profile["features"].items()}

    @classmethod
    def of(cls, card: ModelCard) -> "InputTally | None":
        """An empty tally for the model of ``card``; None when its card has no profile (saved before cards had one)."""
        if not card.input_profile:
            return None
        return cls(card.input_profile, card.version, reads=card.training.get("selected_features", ()))

    def add(self, counts: Mapping[str, np.ndarray], rows: int) -> None:
        """Add one chunk's :func:`profile_counts` of ``rows`` scored rows."""
        for name in self.counts:
            self.counts[name] += counts[name]
        self.n += rows


def profile_counts(profile: Mapping[str, Any], features: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """A chunk's feature matrix counted into ``profile``'s bins, per feature (on a worker, beside scoring).

    Parameters
    ----------
    profile : mapping
        :func:`input_profile`'s result.
    features : np.ndarray, shape (n, len(names))
        Rows; NaN marks a missing value.
    names : sequence of str
        The matrix's column names; every profiled feature must be one of them.
    """
    column = {name: j for j, name in enumerate(names)}
    return {name: bin_counts(spec["edges"], features[:, column[name]]) for name, spec in profile["features"].items()}


def combined(first: InputTally | None, then: InputTally | None) -> InputTally | None:
    """One tally of two (a queue drain's batches): their counts added when they are of the same model; of two models (the
    champion changed between batches), the later one, since a run is compared with one model's training data."""
    if first is None or then is None or first.model_version != then.model_version:
        return then if then is not None else first
    total = InputTally(first.profile, first.model_version, reads=first.reads)
    total.add(first.counts, first.n)
    total.add(then.counts, then.n)
    return total


@dataclass(frozen=True)
class Shift:
    """One feature compared: PSI, the chi-square test's p-value, and the bin whose share moved most."""

    feature: str
    psi: float
    p_value: float
    bin: str  # e.g. "≥ 212.3 Hz", "missing"
    share: float  # of the run's rows in that bin
    training_share: float


@dataclass(frozen=True)
class DriftReport:
    """A run's scored rows against its model's training profile."""

    model_version: str
    n: int
    training_n: int
    checked: int
    psi_limit: float
    alpha: float
    shifted: list[Shift]  # PSI at or above the limit and significant: those the model reads first, then by PSI
    largest: list[Shift]  # the features of largest PSI, shifted or not, for the record; none kept from too few rows
    too_few: bool = False  # fewer rows than a comparison needs: nothing is called shifted
    reads: tuple[str, ...] = ()  # the features the model's booster uses

    def as_doc(self, *, shown: int | None = SHOWN) -> dict[str, Any]:
        """The report as a run document stores it (the first ``shown`` shifts; None: all), with its one-line summary."""
        doc = asdict(self)
        doc["shifted"] = [asdict(s) for s in self.shifted[:shown]]
        doc["shifted_count"] = len(self.shifted)
        doc["shifted_read"] = self.shifted_read
        doc["summary"] = self.line()
        doc["brief"] = self.brief()
        return doc

    @property
    def shifted_read(self) -> int:
        """How many of the shifted features the model's booster uses."""
        return sum(s.feature in self.reads for s in self.shifted)

    def brief(self) -> str:
        """A few words for listings (``voxflow runs``, the dashboard).

        Examples
        --------
        >>> DriftReport("m1", 40, 208, 89, 0.25, 0.01, [], []).brief()
        '0/89 shifted'
        """
        return "too few files" if self.too_few else f"{len(self.shifted)}/{self.checked} shifted"

    def line(self) -> str:
        """One line for logs and the CLI.

        Examples
        --------
        >>> DriftReport("m1", 12, 208, 89, 0.25, 0.01, [], [], too_few=True).line()
        'not compared: 12 files scored, a comparison with the training data needs at least 30'
        """
        if self.too_few:
            return f"not compared: {self.n} files scored, a comparison with the training data needs at least {MIN_ROWS}"
        if not self.shifted:
            return f"none of {self.checked} features shifted from the training data of {self.model_version} ({self.n} files)"
        named = "; ".join(f"{s.feature} {s.share:.0%} {s.bin} (training {s.training_share:.0%}, PSI {s.psi:.2f})" for s in self.shifted[:SHOWN])
        more = f"; and {len(self.shifted) - SHOWN} more" if len(self.shifted) > SHOWN else ""
        read = f", {self.shifted_read} of the {len(self.reads)} it reads" if self.reads else ""
        return (
            f"{len(self.shifted)} of {self.checked} features shifted from the training data of {self.model_version}{read} "
            f"({self.n} files): {named}{more}"
        )


def as_shown(value: Any) -> Any:
    """A run summary's value as a line shows it: a drift report (:meth:`DriftReport.as_doc`) by its one-line summary."""
    return value["summary"] if isinstance(value, dict) and "summary" in value else value


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X ≥ ``statistic``) for X chi-square with ``dof`` degrees of freedom, in closed form (integer dof).

    Examples
    --------
    >>> round(chi2_sf(3.841458820694124, 1), 6), round(chi2_sf(9.487729036781154, 4), 6)
    (0.05, 0.05)
    """
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    term = math.sqrt(half) / math.gamma(1.5)  # y^(1/2) / Γ(3/2), then y^(i-1/2) / Γ(i+1/2)
    total = 0.0
    for i in range(1, dof // 2 + 1):
        total += term
        term *= half / (i + 0.5)
    return min(1.0, math.erfc(math.sqrt(half)) + math.exp(-half) * total)


def _compare_counts(training: np.ndarray, run: np.ndarray) -> tuple[float, float, int]:
    """(PSI, chi-square p-value, the bin whose share moved most) of two count vectors over the same bins."""
    p = (training + PSEUDO_COUNT) / (training.sum() + PSEUDO_COUNT * len(training))
    q = (run + PSEUDO_COUNT) / (run.sum() + PSEUDO_COUNT * len(run))
    psi = float(np.sum((q - p) * np.log(q / p)))
    moved = int(np.argmax(np.abs(q - p)))
    used = (training + run) > 0
    table = np.vstack([training[used], run[used]]).astype(np.float64)
    if table.shape[1] < 2 or not table[1].sum():  # one bin only, or no rows to test
        return psi, 1.0, moved
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return psi, chi2_sf(statistic, table.shape[1] - 1), moved


def _bin_name(feature: str, edges: Sequence[float], index: int) -> str:
    """Bin ``index`` of ``edges`` in words, with the feature's unit."""
    if index == len(edges) + 1:
        return "missing"
    unit = _UNITS.get(feature, "")
    unit = "" if unit in ("", "ratio") else f" {unit}"
    if not edges:
        return "present"
    if index == 0:
        return f"< {edges[0]:.4g}{unit}"
    if index == len(edges):
        return f"≥ {edges[-1]:.4g}{unit}"
    return f"in [{edges[index - 1]:.4g}, {edges[index]:.4g}){unit}"


def compare(tally: InputTally, *, psi_limit: float, alpha: float) -> DriftReport:
    """Weigh a run's tally against its model's training profile, feature by feature.

    A feature has shifted when its PSI is at least ``psi_limit`` and the chi-square test of the two samples' bin
    counts gives p below ``alpha`` divided by the number of features (Bonferroni: with ~90 features, some would
    pass a plain 1 % test in every run). With fewer than :data:`MIN_ROWS` rows nothing is called shifted, and no
    feature's shares are kept: from a run of one recording they would describe that recording.
    """
    shifts = []
    for name, spec in tally.profile["features"].items():
        training = np.asarray(spec["counts"], dtype=np.float64)
        run = tally.counts[name].astype(np.float64)
        psi, p_value, moved = _compare_counts(training, run)
        shifts.append(
            Shift(
                feature=name, psi=round(psi, 4), p_value=float(f"{p_value:.3g}"), bin=_bin_name(name, spec["edges"], moved),
                share=round(float(run[moved] / max(run.sum(), 1)), 4), training_share=round(float(training[moved] / max(training.sum(), 1)), 4),
            )
        )
    shifts.sort(key=lambda s: -s.psi)
    too_few = tally.n < MIN_ROWS
    limit = alpha / max(len(shifts), 1)
    shifted = [] if too_few else [s for s in shifts if s.psi >= psi_limit and s.p_value < limit]
    shifted.sort(key=lambda s: s.feature not in tally.reads)  # stable: by PSI within each group
    return DriftReport(
        model_version=tally.model_version, n=tally.n, training_n=int(tally.profile["n"]), checked=len(shifts), psi_limit=psi_limit,
        alpha=alpha, shifted=shifted, largest=[] if too_few else shifts[:SHOWN], too_few=too_few, reads=tally.reads,
    )
