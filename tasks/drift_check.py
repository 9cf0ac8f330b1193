"""Input drift over a time window: what a model scored lately, over every run and queue drain, against its training data.

A run compares what it scored itself (:func:`flows.analyze.report_input_drift`); a queue drain of a few files a minute
never has enough for a judgement. This reads the predictions a model stored since a time and those recordings' rows
of the Parquet feature store, and compares them all at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from models.drift import DriftReport, InputTally, compare, profile_counts
from store.feature_store import FeatureStore
from store.models import ModelStore
from store.mongo import ResultStore, open_database
from tasks.model_registry import load_champion
from voxflow import services
from voxflow.errors import ModelError
from voxflow.settings import Settings


@dataclass(frozen=True)
class RecentDrift:
    """A window's comparison: the report, the window's start, and how many predictions the model stored in it (the
    report's ``n`` counts those whose features the feature store still holds)."""

    report: DriftReport
    since: datetime
    scored: int

    def as_doc(self) -> dict[str, Any]:
        """The comparison as ``voxflow drift --json`` prints it and the ``input-drift`` flow returns it: every shift."""
        return {"since": self.since.isoformat(timespec="seconds"), "scored": self.scored, **self.report.as_doc(shown=None)}

    def line(self) -> str:
        """Where the window's files came from, in one line."""
        missing = self.scored - self.report.n
        note = f" ({missing} no longer in the feature store)" if missing else ""
        return f"{self.scored} predictions of {self.report.model_version} since {self.since:%Y-%m-%d %H:%M} UTC{note}"


def recent_drift(settings: Settings, *, hours: float, model_version: str | None = None, now: datetime | None = None) -> RecentDrift:
    """Compare what ``model_version`` (default: the champion) scored in the last ``hours`` with its training data.

    Raises
    ------
    ModelError
        When the model's card has no profile of its training data (saved before cards had one).
    """
    since = (now or datetime.now(timezone.utc)) - timedelta(hours=hours)
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        card = load_champion(ModelStore(db), settings.models_dir, model_version).card
        hashes = ResultStore(db).scored_since(card.version, since)
    tally = InputTally.of(card)
    if tally is None:
        raise ModelError(f"model {card.version}'s card has no profile of its training data (saved before voxflow recorded one): retrain it to get one")
    if hashes:
        frame = FeatureStore(settings.feature_store_dir).read(feature_version=card.feature_version, columns=list(card.feature_names), hashes=set(hashes))
        features = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        tally.add(profile_counts(card.input_profile, features, card.feature_names), len(features))
    return RecentDrift(compare(tally, psi_limit=settings.drift_psi, alpha=settings.drift_alpha), since, len(hashes))
