"""Input drift over a window: the predictions a model stored since a time, their features read back from the store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pymongo.database import Database

from models.registry import shipped_bundle
from store.mongo import ResultStore
from tasks.drift_check import recent_drift
from tests.helpers import above_training, like_training, store_scored
from voxflow.errors import ModelError
from voxflow.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_a_window_compares_what_the_champion_scored_in_it_whatever_the_run(home_of_its_own: Settings, mongo_db: Database) -> None:
    card = shipped_bundle().card
    profile = card.input_profile["features"]
    like = np.column_stack([like_training(profile[name]) for name in card.feature_names])  # VOICED's own spread
    above = np.column_stack([above_training(profile[name], 150) for name in card.feature_names])
    store_scored(home_of_its_own, mongo_db, now=NOW, features=like[:100], first=0, hours_ago=2, version=card.version, run_id="drain-1")
    store_scored(home_of_its_own, mongo_db, now=NOW, features=like[100:], first=100, hours_ago=20, version=card.version, run_id="drain-2")
    store_scored(home_of_its_own, mongo_db, now=NOW, features=above, first=1000, hours_ago=30, version=card.version, run_id="old")
    store_scored(home_of_its_own, mongo_db, now=NOW, features=above, first=2000, hours_ago=1, version="another-model", run_id="other")

    day = recent_drift(home_of_its_own, hours=24, now=NOW)
    assert (day.scored, day.report.n, day.report.shifted, day.report.model_version) == (208, 208, [], card.version)
    assert day.since == NOW - timedelta(hours=24) and day.line() == f"208 predictions of {card.version} since 2026-12-06 12:00 UTC"

    two_days = recent_drift(home_of_its_own, hours=48, now=NOW)  # the old run's 150 shifted recordings join them
    assert two_days.report.n == 358 and len(two_days.report.shifted) > 40, two_days.report.line()
    doc = two_days.as_doc()
    assert doc["since"] == "2026-12-05T12:00:00+00:00" and doc["scored"] == 358 and len(doc["shifted"]) == len(two_days.report.shifted) > 5


def test_predictions_whose_features_are_gone_are_counted_and_said(home_of_its_own: Settings, mongo_db: Database) -> None:
    card = shipped_bundle().card
    like = np.column_stack([like_training(card.input_profile["features"][name]) for name in card.feature_names])
    store_scored(home_of_its_own, mongo_db, now=NOW, features=like, first=0, hours_ago=1, version=card.version, run_id="r1")
    ResultStore(mongo_db).insert_predictions([
        {"audio_sha256": f"{9000 + i:064x}", "model_version": card.version, "run_id": "r2", "score": 0.5, "created_at": NOW} for i in range(3)
    ])
    checked = recent_drift(home_of_its_own, hours=24, now=NOW)
    assert (checked.scored, checked.report.n) == (211, 208)
    assert checked.line().endswith("UTC (3 no longer in the feature store)")


def test_nothing_scored_is_too_few_and_a_card_without_a_profile_is_an_error(home_of_its_own: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = recent_drift(home_of_its_own, hours=24, now=NOW)
    assert (empty.scored, empty.report.n, empty.report.too_few) == (0, 0, True)
    assert empty.report.line().startswith("not compared: 0 files scored")

    import tasks.drift_check

    bundle = shipped_bundle()
    old = type(bundle)(bundle.booster_ubj, type(bundle.card)(**{**bundle.card.__dict__, "input_profile": {}}))
    monkeypatch.setattr(tasks.drift_check, "load_champion", lambda *args: old)
    with pytest.raises(ModelError, match="card has no profile of its training data .*: retrain it to get one"):
        recent_drift(home_of_its_own, hours=24, now=NOW)
