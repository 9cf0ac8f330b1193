"""The calibration table: per score bin, how many recordings and how often they were positive."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import calibration_table


def test_calibration_table_counts_every_row_and_observes_rates() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    scores = np.array([0.05, 0.15, 0.15, 0.55, 0.58, 0.92, 0.95, 0.99])
    table = calibration_table(labels, scores, bins=10)
    assert sum(row["n"] for row in table) == 8
    by_bin = {row["bin_low"]: row for row in table}
    assert by_bin[0.1]["positive_rate"] == 0.5 and by_bin[0.1]["n"] == 2
    assert by_bin[0.9]["n"] == 3 and by_bin[0.9]["mean_score"] == pytest.approx((0.92 + 0.95 + 0.99) / 3)
    assert len(calibration_table(labels, np.ones(8))) == 1  # a score of exactly 1.0 lands in the last bin
