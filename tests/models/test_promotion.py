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


def test_a_rolled_back_version_is_not_promoted_by_a_retrain() -> None:
    wins = Decision(True, "AUC 0.700 beats champion 0.650")
    held = unless_rolled_back(wins, {"version": "xgb-fv3-abc", "rolled_back": True})
    assert not held.promote and held.reason.startswith(wins.reason) and "voxflow models promote xgb-fv3-abc" in held.reason
    assert unless_rolled_back(wins, {"version": "xgb-fv3-abc"}) is wins
    loses = Decision(False, "below the margin")
    assert unless_rolled_back(loses, {"version": "xgb-fv3-abc", "rolled_back": True}) is loses
