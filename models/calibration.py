"""Calibration: how often recordings given a score turned out positive. Pure: arrays in, a table out."""

from __future__ import annotations

import numpy as np


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
