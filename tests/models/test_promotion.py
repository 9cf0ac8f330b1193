"""The promotion rule: pure, on cross-validated metrics from the same folds."""

import pytest

from models.promotion import should_promote


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
