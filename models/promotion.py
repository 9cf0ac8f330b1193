"""When a challenger replaces the champion: a pure rule on cross-validated metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Decision:
    """Whether to promote, and the reason recorded on the challenger either way."""

    promote: bool
    reason: str


def _number(value: Any) -> float:
    """A metric as a float; None (how a NaN is stored as JSON) as NaN."""
    return math.nan if value is None else float(value)


def should_promote(challenger: Mapping[str, Any], champion: Mapping[str, Any], margin: float) -> Decision:
    """Promote when the challenger's AUC beats the champion's by ``margin`` and its UAR is no worse by more.

    Both metric sets must come from the same recordings: the same cross-validation folds, or the same held-out rows. A metric
    that could not be computed (NaN, or None as JSON records it) never promotes.

    Parameters
    ----------
    challenger, champion : mapping
        Metrics with ``auc`` and ``uar``.
    margin : float
        Required AUC gain, and the largest UAR loss tolerated.

    Examples
    --------
    >>> should_promote({"auc": 0.80, "uar": 0.70}, {"auc": 0.75, "uar": 0.70}, 0.02).promote
    True
    >>> should_promote({"auc": 0.76, "uar": 0.70}, {"auc": 0.75, "uar": 0.70}, 0.02).promote
    False
    >>> should_promote({"auc": 0.90, "uar": 0.80}, {"auc": None, "uar": 0.70}, 0.02).reason
    'champion AUC could not be computed (NaN): no comparison, not promoted'
    """
    auc, uar = _number(challenger["auc"]), _number(challenger["uar"])
    best_auc, best_uar = _number(champion["auc"]), _number(champion["uar"])
    named = {"challenger AUC": auc, "champion AUC": best_auc, "challenger UAR": uar, "champion UAR": best_uar}
    missing = [name for name, value in named.items() if math.isnan(value)]
    if missing:
        return Decision(False, f"{' and '.join(missing)} could not be computed (NaN): no comparison, not promoted")
    gain = auc - best_auc
    if gain < margin:
        return Decision(False, f"AUC {auc:.3f} vs champion {best_auc:.3f}: gain {gain:+.3f} is below the margin {margin:.3f}")
    if uar < best_uar - margin:
        return Decision(False, f"AUC gain {gain:+.3f} but UAR {uar:.3f} falls below champion {best_uar:.3f} by more than {margin:.3f}")
    return Decision(True, f"AUC {auc:.3f} beats champion {best_auc:.3f} by {gain:+.3f} (margin {margin:.3f}); UAR {uar:.3f} vs {best_uar:.3f}")


def unless_rolled_back(decision: Decision, registered: Mapping[str, Any]) -> Decision:
    """``decision``, except that a version an operator rolled back is never promoted by a retrain.

    A retrain on the same labels rebuilds the same version; it comes back only through ``voxflow models promote``.

    Examples
    --------
    >>> unless_rolled_back(Decision(True, "AUC up"), {"version": "v1", "rolled_back": True}).promote
    False
    """
    if not (decision.promote and registered.get("rolled_back")):
        return decision
    version = registered["version"]
    return Decision(False, f"{decision.reason}; not promoted: {version} was rolled back (voxflow models promote {version} brings it back)")


def unless_champion_changed(decision: Decision, compared: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> Decision:
    """``decision``, except that a challenger compared with one champion is not promoted over another.

    ``compared`` is the champion's document when the retrain compared with it, ``current`` the champion's
    now (None: the shipped baseline); an operator may promote or roll back while a retrain runs.

    Examples
    --------
    >>> unless_champion_changed(Decision(True, "AUC up"), None, {"version": "v2"}).reason
    'AUC up; not promoted: the champion changed to v2 during the retrain, which compared with the shipped baseline'
    """
    before, now = (doc["version"] if doc else None for doc in (compared, current))
    if not decision.promote or before == now:
        return decision
    return Decision(False, f"{decision.reason}; not promoted: the champion changed to {now or 'the shipped baseline'} during the retrain, "
                           f"which compared with {before or 'the shipped baseline'}")
