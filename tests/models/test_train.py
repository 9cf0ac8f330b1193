"""Training and CV on arrays with a known signal: the pure half of models/."""

import json
import re

import numpy as np
import pytest

from models.train import (
    CVReport,
    balanced_threshold,
    check_trainable,
    cross_validate,
    fit_booster,
    fit_model,
    holdout_metrics,
    rank_features,
    sensitivity_threshold,
)
from voxflow.errors import SourceError


def _separable(n: int = 120, seed: int = 0, signal: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 != 0).astype(np.int32)  # imbalanced like VOICED: 2/3 positive
    features = rng.normal(size=(n, 6))
    features[:, 0] += signal * labels
    features[rng.random((n, 6)) < 0.05] = np.nan  # missing values are part of real feature sets
    groups = np.arange(n) // 2  # two recordings per subject
    return features, labels, groups


def test_cv_finds_a_real_signal() -> None:
    report = cross_validate(*_separable(), n_splits=4, n_repeats=2, rounds=60)
    assert report.auc > 0.85 and report.uar > 0.75
    assert report.n == 120 and report.n_positive == 80


def test_cv_on_noise_is_near_chance() -> None:
    features, labels, groups = _separable(signal=0.0, seed=3)
    report = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=60)
    assert 0.3 < report.auc < 0.7


# Deep, unregularised trees on every column: a recipe that memorises rows it has seen.
MEMORISING = {"max_depth": 6, "lambda": 0, "alpha": 0, "subsample": 1, "colsample_bytree": 1, "monotone_by_auc": False}


def test_groups_never_straddle_train_and_test() -> None:
    # Each subject's two recordings are identical and the labels random: a memorising model scores
    # ~0.5 when subjects stay on one side of every split, ~0.92 when their recordings straddle folds.
    rng = np.random.default_rng(5)
    base = rng.normal(size=(60, 4))
    labels = rng.integers(0, 2, 60)
    features = np.repeat(base, 2, axis=0)
    report = cross_validate(
        features, np.repeat(labels, 2), np.repeat(np.arange(60), 2), n_splits=4, n_repeats=2, rounds=100, params=MEMORISING, n_features=None
    )
    assert report.auc < 0.7


def test_fold_thresholds_are_chosen_without_the_test_rows() -> None:
    # On noise, a cut chosen on a 12-row test fold fits that fold (UAR ~0.6 here); one chosen on the
    # training rows is at chance on it.
    features, labels, groups = _separable(signal=0.0, seed=3)
    report = cross_validate(features, labels, groups, n_splits=10, n_repeats=2, rounds=60)
    assert report.uar < 0.55


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        (np.zeros(40), "positive recordings come from 1 subjects and the negative from 1 (1 in all)"),
        (np.arange(40) % 3, "positive recordings come from 3 subjects and the negative from 3 (3 in all)"),
        (np.where(np.arange(40) % 2 == 1, np.arange(40) % 8, 100 + np.arange(40)), "positive recordings come from 4 subjects and the negative from 20 (24 in all)"),
    ],
)
def test_check_trainable_wants_each_class_from_as_many_subjects_as_folds(subjects: np.ndarray, expected: str) -> None:
    # Fewer subjects than folds left StratifiedGroupKFold's test folds empty: sklearn's "Found empty input array".
    labels = np.arange(40) % 2
    with pytest.raises(SourceError, match="VOXFLOW_CV_SPLITS") as refused:
        check_trainable(labels, subjects, min_rows=20, n_splits=5)
    assert expected in refused.value.reason and "in 5 folds needs at least 5 subjects of each class" in refused.value.reason
    check_trainable(labels, np.arange(40) % 10, min_rows=20, n_splits=5)  # 5 subjects per class: enough


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(np.arange(10) % 2, "10 labelled recordings have features; training needs at least 20"), (np.zeros(40), "one class only (0 positive of 40)")],
)
def test_check_trainable_refuses_few_rows_and_one_class(labels: np.ndarray, expected: str) -> None:
    with pytest.raises(SourceError, match=re.escape(expected)):
        check_trainable(labels, np.arange(len(labels)), min_rows=20, n_splits=5)


def test_report_writes_a_metric_no_fold_could_compute_as_null() -> None:
    nan = float("nan")
    report = CVReport(n=40, n_positive=0, n_splits=5, n_repeats=1, auc=nan, auc_std=nan, uar=1.0, f1=0.0, sensitivity=nan,
                      specificity=1.0, brier=0.003, threshold=0.5, fold_aucs=(nan, 0.75))
    metrics = report.as_dict()
    assert metrics["auc"] is None and metrics["sensitivity"] is None and metrics["fold_aucs"] == [None, 0.75]
    json.dumps(metrics, allow_nan=False)  # valid JSON, and a document MongoDB stores


def test_each_rows_out_of_fold_score_is_kept_but_not_among_the_metrics() -> None:
    features, labels, groups = _separable()
    report = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=60)
    oof = np.asarray(report.oof_scores)
    assert oof.shape == (120,) and ((0 <= oof) & (oof <= 1)).all()
    assert holdout_metrics(labels, oof, report.threshold)["auc"] > 0.85  # each row scored by models that never saw it
    assert "oof_scores" not in report.as_dict()


def test_holdout_metrics_of_one_class_are_none() -> None:
    assert holdout_metrics(np.array([1, 1, 1]), np.array([0.2, 0.9, 0.6]), 0.5) == {"n": 3, "n_positive": 3, "auc": None, "uar": None}


def test_balanced_threshold_separates_two_clusters() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    assert 0.3 < balanced_threshold(labels, scores) < 0.6


def test_fit_booster_predicts_the_signal_direction() -> None:
    import xgboost as xgb

    features, labels, _ = _separable()
    booster = fit_booster(features, labels)
    scores = booster.predict(xgb.DMatrix(features, missing=np.nan))
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.3


@pytest.mark.parametrize("bad", [np.zeros(10), np.ones(10)])
def test_threshold_of_constant_scores_defaults(bad: np.ndarray) -> None:
    assert balanced_threshold(np.array([0, 1] * 5), bad) == 0.5


def test_sensitivity_threshold_flags_the_target_share_of_positives() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 50 + [1] * 100)
    scores = np.concatenate([rng.uniform(0, 0.6, 50), rng.uniform(0.3, 1.0, 100)])
    for target in (0.5, 0.8, 0.95):
        cut = sensitivity_threshold(labels, scores, target)
        flagged = scores[labels == 1] >= cut
        assert flagged.mean() >= target
        # the most specific such cut: raising it past the next positive loses the target
        assert (scores[labels == 1] > cut).mean() < target


def test_target_sensitivity_cv_trades_specificity_for_sensitivity() -> None:
    features, labels, groups = _separable(signal=1.0, seed=2)
    # Unpruned trees: scores spread over many values, so the two cuts flag different rows.
    fine = {"params": {"max_depth": 3, "gamma": 0.0, "lambda": 1.0, "alpha": 0.0, "min_child_weight": 1}, "rounds": 40}
    balanced = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, **fine)
    sensitive = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, target_sensitivity=0.95, **fine)
    assert sensitive.sensitivity > balanced.sensitivity and sensitive.specificity < balanced.specificity
    assert sensitive.auc == balanced.auc  # same folds, same seeds: only the threshold moved
    assert sensitive.as_dict()["target_sensitivity"] == 0.95


def test_each_outer_fold_is_reported_once_done() -> None:
    features, labels, groups = _separable(seed=4)
    reported: list[int] = []
    report = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, on_fold=lambda: reported.append(len(reported)))
    assert len(reported) == len(report.fold_aucs) == 8


def test_same_seed_same_folds() -> None:
    features, labels, groups = _separable(seed=4)
    first = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=30)
    again = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=30)
    other = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=30, seed=9)
    assert first.fold_aucs == again.fold_aucs and len(first.fold_aucs) == 8
    assert first.fold_aucs != other.fold_aucs


def test_each_repeat_is_a_fresh_draw_of_folds_and_of_xgboosts_sampling() -> None:
    features, labels, groups = _separable(signal=0.7)
    two = cross_validate(features, labels, groups, n_splits=4, n_repeats=2, rounds=30)
    second_alone = cross_validate(features, labels, groups, n_splits=4, n_repeats=1, rounds=30, seed=1)
    assert two.fold_aucs[4:] == second_alone.fold_aucs  # repeat 1 of seed 0 is repeat 0 of seed 1, subsampling too


def test_rank_features_puts_the_signal_first_and_fit_model_keeps_it() -> None:
    features, labels, _ = _separable(seed=6)
    assert rank_features(features, labels)[0] == 0
    model = fit_model(features, labels, n_features=2, rounds=20)
    assert 0 in model.columns and len(model.columns) == 2
    # The booster reads all 6 columns (its card keeps the whole feature set) but splits only on the 2 kept.
    assert model.booster.num_features() == 6 and model.predict(features).shape == (len(labels),)
    split_on = {int(name[1:]) for name in model.booster.get_score(importance_type="weight")}
    assert split_on and split_on <= set(model.columns.tolist())


def test_feature_selection_happens_inside_the_folds() -> None:
    # Pure noise, many columns: the 5 "best" picked on all rows first score ~0.9 here (checked), in-fold ~0.5.
    rng = np.random.default_rng(11)
    labels = (np.arange(40) % 2).astype(np.int32)
    features = rng.normal(size=(40, 500))
    report = cross_validate(features, labels, np.arange(40), n_splits=4, n_repeats=1, rounds=30, n_features=5, params={"min_child_weight": 1})
    assert report.auc < 0.7


def test_column_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    from models.train import _column_auc

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 50)
    values = np.round(rng.normal(size=50) + labels, 1)  # rounded: ties
    values[:4] = np.nan
    assert _column_auc(values, labels) == pytest.approx(roc_auc_score(labels[4:], values[4:]))


def test_recorded_recipe_reproduces_how_an_old_card_was_trained() -> None:
    import xgboost as xgb

    from models.train import class_weight, recorded_recipe

    params, rounds, n_features = recorded_recipe({"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "rounds": 30})
    assert (rounds, n_features) == (30, None) and params["lambda"] == 1.0 and params["gamma"] == 0.0
    features, labels, _ = _separable(seed=8)
    # Trained back then with only those keys (and class weights): our newer defaults must not leak in.
    then = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "nthread": 1, "seed": 0, "scale_pos_weight": class_weight(labels)},
                     xgb.DMatrix(features, label=labels, missing=np.nan), num_boost_round=30)
    now = fit_booster(features, labels, params=params, rounds=rounds)
    matrix = xgb.DMatrix(features, missing=np.nan)
    assert np.allclose(then.predict(matrix), now.predict(matrix), atol=1e-6)


def test_auc_directions_follow_each_columns_own_auc() -> None:
    from models.train import auc_directions

    labels = np.array([0, 0, 0, 1, 1, 1])
    features = np.column_stack([
        [1.0, 2, 3, 4, 5, 6],  # rises with the label
        [6.0, 5, 4, 3, 2, 1],  # falls with it
        [1.0, 2, 3, 1, 2, 3],  # at chance
        np.full(6, np.nan),  # blanked by keep_columns
    ])
    assert auc_directions(features, labels).tolist() == [1, -1, 0, 0]


def test_default_recipe_scores_move_with_each_columns_direction() -> None:
    import xgboost as xgb

    from models.train import booster_params

    rng = np.random.default_rng(7)
    rise = rng.uniform(-3, 3, 300)
    # Positives are likelier in the middle than below it, rarer again at the top: AUC above chance, not monotone.
    labels = (rng.random(300) < np.where(rise < 0, 0.3, np.where(rise < 2, 0.9, 0.2))).astype(np.int32)
    features = np.column_stack([rise, -rise + rng.normal(0, 0.5, 300), np.full(300, np.nan)])  # last: blanked by keep_columns
    params = booster_params(features, labels)
    assert params["monotone_constraints"] == "(1,-1,0)" and "monotone_by_auc" not in params
    grid = np.zeros((50, 3))
    grid[:, 0], grid[:, 2] = np.linspace(-3, 3, 50), np.nan

    def falls(params: dict | None) -> int:
        steps = np.diff(fit_booster(features, labels, params=params, rounds=100).predict(xgb.DMatrix(grid)))
        return int((steps < -1e-7).sum())

    assert falls(None) == 0
    # An explicit False (what recorded_recipe gives cards from before the key) trains unconstrained: the dip shows.
    assert falls({"monotone_by_auc": False}) > 0
