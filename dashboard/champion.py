"""The champion model as the dashboard shows it: the ``models`` collection first, else the file registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from dashboard.queries import champion_document
from voxflow.settings import Settings


@dataclass(frozen=True)
class Champion:
    """The model scoring new clips, where it was found, and what it was trained on."""

    version: str
    source: str
    metrics: dict[str, Any] = field(default_factory=dict)
    positive_label: str = "pathological"
    threshold: float | None = None
    training_positive_share: float | None = None


def current_champion(db: Database, settings: Settings) -> Champion:
    """The champion from ``models`` (status champion), else the card of the file registry's champion or shipped baseline."""
    doc = champion_document(db)
    if doc is not None:
        training = doc.get("training") or {}
        metrics = dict(doc.get("metrics") or {})
        threshold = doc.get("threshold", metrics.get("threshold"))
        return Champion(str(doc["version"]), "models collection", metrics, str(doc.get("positive_label", "pathological")),
                        None if threshold is None else float(threshold), _share(training))
    from models.registry import load_bundle  # imports xgboost (~1 s): only when the models collection has no champion

    card = load_bundle(settings.models_dir).card
    return Champion(card.version, "model registry (card.json)", dict(card.metrics), card.positive_label, card.threshold, _share(card.training))


def _share(training: dict[str, Any]) -> float | None:
    n, positive = training.get("n"), training.get("n_positive")
    return positive / n if n and positive is not None else None
