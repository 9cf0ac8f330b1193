"""The promotion rule: pure, on cross-validated metrics from the same folds."""

import pytest

from models.promotion import Decision, should_promote, unless_rolled_back


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promote", "why"),
    [
        ({"auc": 0.80, "uar": 0.70}, {"auc": 0.75, "uar": 0.70}, 0.02, True, "beats champion"),
        ({"auc": 0.76, "uar": 0.75}, {"auc": 0.75, "uar": 0.70}, 0.02, False, "below the margin"),
        ({"auc": 0.75, "uar": 0.70}, {"auc": 0.75, "uar": 0.70}, 0.0, True, "beats champion"),
        ({"auc": 0.70, "uar": 0.70}, {"auc": 0.75, "uar": 0.70}, 0.0, False, "below the margin"),
        ({"auc": 0.85, "uar": 0.60}, {"auc": 0.75, "uar": 0.70}, 0.02, False, "UAR 0.600 falls below"),
        ({"auc": 0.85, "uar": 0.69}, {"auc": 0.75, "uar": 0.70}, 0.02, True, "beats champion"),
    ],
)
def test_should_promote(challenger: dict, champion: dict, margin: float, promote: bool, why: str) -> None:
    decision = should_promote(challenger, champion, margin)
    assert decision.promote is promote
    assert why in decision.reason


@pytest.mark.parametrize(
    ("challenger", "champion", "why"),
    [
        ({"auc": float("nan"), "uar": 0.90}, {"auc": 0.75, "uar": 0.70}, "challenger AUC could not be computed (NaN)"),
        ({"auc": 0.90, "uar": 0.90}, {"auc": float("nan"), "uar": 0.70}, "champion AUC could not be computed (NaN)"),
        ({"auc": 0.90, "uar": 0.90}, {"auc": None, "uar": 0.70}, "champion AUC could not be computed (NaN)"),  # NaN as JSON stores it
        ({"auc": 0.90, "uar": float("nan")}, {"auc": 0.75, "uar": 0.70}, "challenger UAR could not be computed (NaN)"),
    ],
)
def test_a_metric_that_is_nan_never_promotes(challenger: dict, champion: dict, why: str) -> None:
    decision = should_promote(challenger, champion, 0.0)
    assert decision.promote is False and decision.reason.startswith(why)


def test_a_rolled_back_version_is_not_promoted_by_a_retrain() -> None:
    wins = Decision(True, "AUC 0.700 beats champion 0.650")
    held = unless_rolled_back(wins, {"version": "xgb-fv3-abc", "rolled_back": True})
    assert not held.promote and held.reason.startswith(wins.reason) and "voxflow models promote xgb-fv3-abc" in held.reason
    assert unless_rolled_back(wins, {"version": "xgb-fv3-abc"}) is wins
    loses = Decision(False, "below the margin")
    assert unless_rolled_back(loses, {"version": "xgb-fv3-abc", "rolled_back": True}) is loses
