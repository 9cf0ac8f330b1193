"""Train and cross-validate the XGBoost screening model. Pure: arrays in, booster and metrics out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

DEFAULT_PARAMS: dict[str, float | int | str] = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": 3,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.6,
    "min_child_weight": 2,
    "nthread": 1,
}
DEFAULT_ROUNDS = 200


@dataclass(frozen=True)
class CVReport:
    """Subject-grouped repeated cross-validation, metrics averaged over folds (std alongside)."""

    n: int
    n_positive: int
    n_splits: int
    n_repeats: int
    auc: float
    auc_std: float
    uar: float
    f1: float
    sensitivity: float
    specificity: float
    brier: float
    threshold: float
    target_sensitivity: float | None = None
    fold_aucs: tuple[float, ...] = ()
    calibration: tuple[dict[str, float | int], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready metrics: floats rounded to 4 places, tuples as lists."""
        def plain(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, 4)
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {k: plain(v) for k, v in self.__dict__.items()}


def class_weight(labels: np.ndarray) -> float:
    """``scale_pos_weight`` that makes both classes weigh the same in total (negatives / positives)."""
    n_pos = max(int(np.sum(labels)), 1)
    return max(len(labels) - n_pos, 1) / n_pos


def fit_booster(
    features: np.ndarray, labels: np.ndarray, *, params: dict | None = None, rounds: int = DEFAULT_ROUNDS, seed: int = 0
) -> xgb.Booster:
    """Fit a booster, weighting classes so each counts equally.

    Parameters
    ----------
    features : np.ndarray, shape (n, d)
    labels : np.ndarray, shape (n,)
        1 for the positive (pathological) class, 0 otherwise.
    """
    labels = np.asarray(labels, dtype=np.int32)
    merged = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "scale_pos_weight": class_weight(labels)}
    return xgb.train(merged, xgb.DMatrix(features, label=labels, missing=np.nan), num_boost_round=rounds)


def balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score cut that maximises balanced accuracy (Youden's J) on these labelled scores."""
    candidates = np.unique(scores)
    if len(candidates) < 2:
        return 0.5
    cuts = (candidates[:-1] + candidates[1:]) / 2
    best = max(cuts, key=lambda c: balanced_accuracy_score(labels, scores >= c))
    return float(best)


def sensitivity_threshold(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The highest score cut that still flags at least ``target`` of the positives (most specific such cut)."""
    positives = np.sort(np.asarray(scores)[np.asarray(labels) == 1])
    if len(positives) == 0:
        return 0.5
    # Flagging scores >= cut: keep the ceil(target * n)-th highest positive score.
    keep = int(np.ceil(target * len(positives)))
    return float(positives[len(positives) - max(keep, 1)])


def choose_threshold(labels: np.ndarray, scores: np.ndarray, *, target_sensitivity: float | None = None) -> float:
    """Balanced-accuracy cut, or the cut reaching ``target_sensitivity`` when one is set."""
    if target_sensitivity is None:
        return balanced_threshold(labels, scores)
    return sensitivity_threshold(labels, scores, target_sensitivity)


def calibration_table(labels: np.ndarray, scores: np.ndarray, *, bins: int = 10) -> list[dict[str, float | int]]:
    """Reliability table: per equal-width score bin, the count, mean score and observed positive rate.

    Returns
    -------
    list of dict
        ``bin_low``, ``bin_high``, ``n``, ``mean_score``, ``positive_rate``; empty bins are left out.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            table.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "n": int(mask.sum()),
                    "mean_score": float(scores[mask].mean()),
                    "positive_rate": float(labels[mask].mean()),
                }
            )
    return table


def _oof_scores(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, n_splits: int, params: dict | None, rounds: int, seed: int) -> np.ndarray:
    """Out-of-fold scores from one grouped K-fold pass (every row scored by a model that never saw it)."""
    scores = np.empty(len(labels))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(features, labels, groups):
        booster = fit_booster(features[train_idx], labels[train_idx], params=params, rounds=rounds, seed=seed)
        scores[test_idx] = booster.predict(xgb.DMatrix(features[test_idx], missing=np.nan))
    return scores


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    n_splits: int = 5,
    n_repeats: int = 5,
    params: dict | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    target_sensitivity: float | None = None,
) -> CVReport:
    """Repeated, stratified, subject-grouped K-fold: no subject is in both train and test.

    Each fold's threshold maximises balanced accuracy (or reaches ``target_sensitivity``) on
    out-of-fold scores of an inner grouped 3-fold pass over that fold's training rows (training-set
    scores are overfit, test rows unseen). The same ``seed`` gives the same folds for the same rows,
    so two recipes can be compared fold for fold.
    The reported ``threshold`` is chosen the same way on the outer out-of-fold scores of all rows,
    averaged over repeats: the cut a model trained on all the data should use.
    """
    labels = np.asarray(labels, dtype=np.int32)
    groups = np.asarray(groups)
    per_fold: dict[str, list[float]] = {k: [] for k in ("auc", "uar", "f1", "sens", "spec", "brier")}
    oof_sum = np.zeros(len(labels))
    for repeat in range(n_repeats):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + repeat)
        for train_idx, test_idx in splitter.split(features, labels, groups):
            inner = _oof_scores(features[train_idx], labels[train_idx], groups[train_idx], n_splits=3, params=params, rounds=rounds, seed=seed + repeat)
            threshold = choose_threshold(labels[train_idx], inner, target_sensitivity=target_sensitivity)
            booster = fit_booster(features[train_idx], labels[train_idx], params=params, rounds=rounds, seed=seed)
            scores = booster.predict(xgb.DMatrix(features[test_idx], missing=np.nan))
            oof_sum[test_idx] += scores
            truth, predicted = labels[test_idx], scores >= threshold
            per_fold["auc"].append(roc_auc_score(truth, scores) if len(set(truth)) == 2 else np.nan)
            per_fold["uar"].append(balanced_accuracy_score(truth, predicted))
            per_fold["f1"].append(f1_score(truth, predicted, zero_division=0))
            per_fold["sens"].append(float(predicted[truth == 1].mean()) if (truth == 1).any() else np.nan)
            per_fold["spec"].append(float((~predicted[truth == 0]).mean()) if (truth == 0).any() else np.nan)
            per_fold["brier"].append(brier_score_loss(truth, scores))
    mean = {k: float(np.nanmean(v)) for k, v in per_fold.items()}
    oof = oof_sum / n_repeats
    return CVReport(
        n=len(labels),
        n_positive=int(labels.sum()),
        n_splits=n_splits,
        n_repeats=n_repeats,
        auc=mean["auc"],
        auc_std=float(np.nanstd(per_fold["auc"])),
        uar=mean["uar"],
        f1=mean["f1"],
        sensitivity=mean["sens"],
        specificity=mean["spec"],
        brier=mean["brier"],
        threshold=choose_threshold(labels, oof, target_sensitivity=target_sensitivity),
        target_sensitivity=target_sensitivity,
        fold_aucs=tuple(float(a) for a in per_fold["auc"]),
        calibration=tuple(calibration_table(labels, oof)),
    )
