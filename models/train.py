"""Train and cross-validate the XGBoost screening model. Pure: arrays in, booster and metrics out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import xgboost as xgb
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, f1_score, roc_auc_score
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedGroupKFold

from models.calibration import calibration_table
from voxflow.errors import TooFewLabels

# Chosen on VOICED with bench/quality.py (subject-grouped 5x5 CV; numbers in the README): boosted stumps
# (an additive model) on the 8 columns strongest on each training fold, each column constrained monotone in
# the direction of its ROC AUC on those rows. Versus the v3 recipe (depth 2, unconstrained): +0.018 AUC on
# the seed-0 folds that recipe was picked on, +0.031 on 9 fresh fold sets (seeds 1000..9000, all positive).
# min_child_weight and gamma stay at XGBoost's floor: they count hessian, so larger values prune every
# split on small cohorts (40 clips gave constant scores).
MONOTONE_BY_AUC = "monotone_by_auc"  # recipe key, not an XGBoost parameter: resolved by booster_params
DEFAULT_PARAMS: dict[str, float | int | str | bool] = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": 1,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.6,
    "min_child_weight": 1,
    "lambda": 10.0,
    "alpha": 1.0,
    "gamma": 0.0,
    "nthread": 1,
    MONOTONE_BY_AUC: True,
}
DEFAULT_ROUNDS = 200
DEFAULT_N_FEATURES: int | None = 8
# XGBoost's own values of the keys above: a recorded recipe that lacks a key was trained with these.
XGBOOST_DEFAULTS: dict[str, float | int | bool] = {
    "max_depth": 6, "eta": 0.3, "subsample": 1.0, "colsample_bytree": 1.0, "min_child_weight": 1, "lambda": 1.0, "alpha": 0.0, "gamma": 0.0,
    MONOTONE_BY_AUC: False,
}


def recorded_recipe(params: dict[str, Any]) -> tuple[dict[str, Any], int, int | None]:
    """(XGBoost params, rounds, n_features) of a model card's ``params``, reproducing how it was trained.

    Examples
    --------
    >>> recorded_recipe({"max_depth": 3, "rounds": 200})[0]["lambda"], recorded_recipe({"rounds": 150})[1:]
    (1.0, (150, None))
    """
    xgb_params = {**XGBOOST_DEFAULTS, **{k: v for k, v in params.items() if k not in ("rounds", "n_features")}}
    return xgb_params, int(params.get("rounds", DEFAULT_ROUNDS)), params.get("n_features")


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
    # Each row's out-of-fold score, averaged over repeats (per-row data, not a metric: left out of as_dict).
    oof_scores: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready metrics: floats rounded to 4 places, NaN (not computable on these folds) as None, tuples as lists."""
        def plain(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, 4) if math.isfinite(value) else None
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {k: plain(v) for k, v in self.__dict__.items() if k != "oof_scores"}


def class_weight(labels: np.ndarray) -> float:
    """``scale_pos_weight`` that makes both classes weigh the same in total (negatives / positives)."""
    n_pos = max(int(np.sum(labels)), 1)
    return max(len(labels) - n_pos, 1) / n_pos


def auc_directions(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column, +1 where its ROC AUC on these rows is above chance, -1 below, 0 at chance or without values.

    Parameters
    ----------
    features : np.ndarray, shape (n, d)
    labels : np.ndarray, shape (n,)

    Returns
    -------
    np.ndarray of int, shape (d,)
    """
    return np.sign(column_aucs(features, labels) - 0.5).astype(int)


def booster_params(features: np.ndarray, labels: np.ndarray, *, params: dict | None = None, seed: int = 0) -> dict[str, Any]:
    """XGBoost parameters for these rows: defaults, balanced class weight, ``params``, and the recipe keys resolved.

    ``monotone_by_auc`` (true in the defaults) becomes ``monotone_constraints``: every column with values
    may only move the score in the direction of its own ROC AUC on these rows (columns blanked by
    :func:`keep_columns` stay unconstrained, they are never split on).
    """
    merged = {**DEFAULT_PARAMS, "scale_pos_weight": class_weight(labels), **(params or {}), "seed": seed}
    if merged.pop(MONOTONE_BY_AUC, False):
        merged["monotone_constraints"] = "(" + ",".join(str(d) for d in auc_directions(features, labels)) + ")"
    return merged


def fit_booster(
    features: np.ndarray, labels: np.ndarray, *, params: dict | None = None, rounds: int = DEFAULT_ROUNDS, seed: int = 0
) -> xgb.Booster:
    """Fit a booster with :func:`booster_params` (classes weigh the same unless ``params`` sets ``scale_pos_weight``).

    Parameters
    ----------
    features : np.ndarray, shape (n, d)
    labels : np.ndarray, shape (n,)
        1 for the positive (pathological) class, 0 otherwise.
    """
    labels = np.asarray(labels, dtype=np.int32)
    merged = booster_params(features, labels, params=params, seed=seed)
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


def _column_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of one column as a score (Mann-Whitney U from ranks; ties share a rank), NaN rows skipped."""
    present = ~np.isnan(values)
    values, labels = values[present], labels[present]
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0 or np.ptp(values) == 0:
        return 0.5
    ranks = rankdata(values)
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def column_aucs(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each column's own ROC AUC as a score of ``labels`` (0.5 for a column without values or spread)."""
    labels = np.asarray(labels)
    return np.array([_column_auc(features[:, j], labels) for j in range(features.shape[1])])


def rank_features(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Column indices, strongest first, by how far each column's own ROC AUC is from chance."""
    return np.argsort(-np.abs(column_aucs(features, labels) - 0.5), kind="stable")


def select_columns(features: np.ndarray, labels: np.ndarray, n_features: int | None) -> np.ndarray:
    """Indices (in column order) of the ``n_features`` strongest columns; every column when None."""
    if n_features is None or n_features >= features.shape[1]:
        return np.arange(features.shape[1])
    return np.sort(rank_features(features, np.asarray(labels))[:n_features])


def keep_columns(features: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A copy with every column outside ``columns`` set to NaN (missing).

    A booster fitted on it reads the full feature vector yet never splits on the blanked columns
    (XGBoost finds no split in a feature without values), so a model card can keep the whole feature set.
    """
    kept = np.full(features.shape, np.nan)
    kept[:, columns] = features[:, columns]
    return kept


@dataclass(frozen=True)
class FittedModel:
    """A booster over the full feature vector, and the columns it was allowed to use (selected on its training rows)."""

    booster: xgb.Booster
    columns: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(xgb.DMatrix(features, missing=np.nan))


def fit_model(
    features: np.ndarray, labels: np.ndarray, *, params: dict | None = None, rounds: int = DEFAULT_ROUNDS,
    n_features: int | None = DEFAULT_N_FEATURES, seed: int = 0,
) -> FittedModel:
    """Select the ``n_features`` strongest columns on these rows only (None keeps all), then fit a booster on them."""
    labels = np.asarray(labels, dtype=np.int32)
    columns = select_columns(features, labels, n_features)
    return FittedModel(fit_booster(keep_columns(features, columns), labels, params=params, rounds=rounds, seed=seed), columns)


def check_trainable(labels: np.ndarray, groups: np.ndarray, *, min_rows: int, n_splits: int) -> None:
    """Refuse rows too few, one-sided, or from too few subjects for :func:`cross_validate` in ``n_splits`` folds.

    Stratified subject-grouped folds need each class from at least ``n_splits`` subjects: with fewer,
    some test folds hold no subject at all, or none of a class.

    Parameters
    ----------
    labels : np.ndarray, shape (n,)
        1 for the positive class, 0 otherwise.
    groups : np.ndarray, shape (n,)
        The subject of each row.

    Raises
    ------
    TooFewLabels
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    positives = int(labels.sum())
    if len(labels) < min_rows:
        raise TooFewLabels(f"{len(labels)} labelled recordings have features; training needs at least {min_rows}")
    if positives == 0 or positives == len(labels):
        raise TooFewLabels(f"the labels hold one class only ({positives} positive of {len(labels)})")
    by_class = {name: len(set(groups[labels == value])) for name, value in (("positive", 1), ("negative", 0))}
    if min(by_class.values()) < n_splits:
        raise TooFewLabels(
            f"the positive recordings come from {by_class['positive']} subjects and the negative from {by_class['negative']} "
            f"({len(set(groups))} in all); subject-grouped cross-validation in {n_splits} folds needs at least {n_splits} "
            "subjects of each class: label more subjects or lower VOXFLOW_CV_SPLITS"
        )


def _oof_scores(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int, **recipe: Any) -> np.ndarray:
    """Out-of-fold scores from one grouped K-fold pass (every row scored by a model that never saw it)."""
    scores = np.empty(len(labels))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(features, labels, groups):
        scores[test_idx] = fit_model(features[train_idx], labels[train_idx], seed=seed, **recipe).predict(features[test_idx])
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
    n_features: int | None = DEFAULT_N_FEATURES,
    seed: int = 0,
    target_sensitivity: float | None = None,
    on_fold: Callable[[], None] | None = None,
) -> CVReport:
    """Repeated, stratified, subject-grouped K-fold: no subject is in both train and test.

    ``on_fold`` is called after each of the ``n_splits * n_repeats`` outer folds (a progress report).

    Each fold's threshold maximises balanced accuracy (or reaches ``target_sensitivity``) on
    out-of-fold scores of an inner grouped 3-fold pass over that fold's training rows (training-set
    scores are overfit, test rows unseen). The same ``seed`` gives the same folds for the same rows,
    so two recipes can be compared fold for fold; repeat ``r`` splits and fits with ``seed + r``, so
    repeats differ in XGBoost's row and column sampling as well as in their folds. Feature selection (``n_features``) is redone on
    the training rows of every fit, inner folds included: test rows never inform it.
    The reported ``threshold`` is chosen the same way on the outer out-of-fold scores of all rows,
    averaged over repeats: the cut a model trained on all the data should use.
    """
    labels = np.asarray(labels, dtype=np.int32)
    groups = np.asarray(groups)
    per_fold: dict[str, list[float]] = {k: [] for k in ("auc", "uar", "f1", "sens", "spec", "brier")}
    oof_sum = np.zeros(len(labels))
    recipe = {"params": params, "rounds": rounds, "n_features": n_features}
    for repeat in range(n_repeats):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + repeat)
        for train_idx, test_idx in splitter.split(features, labels, groups):
            inner = _oof_scores(features[train_idx], labels[train_idx], groups[train_idx], n_splits=3, seed=seed + repeat, **recipe)
            threshold = choose_threshold(labels[train_idx], inner, target_sensitivity=target_sensitivity)
            scores = fit_model(features[train_idx], labels[train_idx], seed=seed + repeat, **recipe).predict(features[test_idx])
            oof_sum[test_idx] += scores
            truth, predicted = labels[test_idx], scores >= threshold
            per_fold["auc"].append(roc_auc_score(truth, scores) if len(set(truth)) == 2 else np.nan)
            per_fold["uar"].append(balanced_accuracy_score(truth, predicted))
            per_fold["f1"].append(f1_score(truth, predicted, zero_division=0))
            per_fold["sens"].append(float(predicted[truth == 1].mean()) if (truth == 1).any() else np.nan)
            per_fold["spec"].append(float((~predicted[truth == 0]).mean()) if (truth == 0).any() else np.nan)
            per_fold["brier"].append(brier_score_loss(truth, scores))
            if on_fold is not None:
                on_fold()
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
        oof_scores=tuple(float(score) for score in oof),
    )


def holdout_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """AUC and balanced accuracy (UAR, at ``threshold``) of scores on held-out rows; None where one class is absent.

    Examples
    --------
    >>> holdout_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    {'n': 4, 'n_positive': 2, 'auc': 0.75, 'uar': 0.5}
    """
    labels = np.asarray(labels)
    both = len(set(labels.tolist())) == 2
    return {
        "n": int(len(labels)), "n_positive": int(labels.sum()),
        "auc": round(float(roc_auc_score(labels, scores)), 4) if both else None,
        "uar": round(float(balanced_accuracy_score(labels, np.asarray(scores) >= threshold)), 4) if both else None,
    }
