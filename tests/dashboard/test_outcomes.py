"""The Models page shows the champion's last outcomes check: as the model-outcomes flow records it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np
from pymongo.database import Database
from streamlit.testing.v1 import AppTest

from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL
from models.registry import shipped_bundle
from store.labels import LabelStore
from store.mongo import ResultStore
from store.outcome_checks import record_outcome_check
from tasks.outcomes import model_outcomes
from tests.dashboard.conftest import charts, metrics
from voxflow import services
from voxflow.settings import Settings


def _labelled_and_scored(db: Database, version: str, truth: np.ndarray, scores: np.ndarray, *, first: int, site: str) -> None:
    hashes = [f"{first + i:064x}" for i in range(len(truth))]
    LabelStore(db).replace([{"audio_sha256": sha, "label": POSITIVE_LABEL if t else NEGATIVE_LABEL, "subject_id": sha[-8:], "path": None,
                             "source": "t", "original_label": "", "metadata": {"site": site}} for sha, t in zip(hashes, truth)])
    ResultStore(db).insert_predictions([{"audio_sha256": sha, "model_version": version, "run_id": "r", "score": float(s),
                                         "label": POSITIVE_LABEL if s >= 0.5 else NEGATIVE_LABEL, "created_at": datetime.now(timezone.utc)}
                                        for sha, s in zip(hashes, scores)])


def test_the_last_check_of_the_champion_with_its_verdicts_and_worse_groups(
    home_of_its_own: Settings, mongo_db: Database, open_page: Callable[..., AppTest]
) -> None:
    env = {"VOXFLOW_HOME": str(home_of_its_own.home), "VOXFLOW_MONGO_URI": services.mongo_uri(home_of_its_own),
           "VOXFLOW_MONGO_DB": mongo_db.name, "VOXFLOW_REDIS_URL": services.redis_url(home_of_its_own), "VOXFLOW_DASHBOARD_TIMEZONE": "UTC"}
    version = shipped_bundle().card.version
    rng = np.random.default_rng(1)
    truth = rng.uniform(size=150) < 0.6
    _labelled_and_scored(mongo_db, version, truth, np.where(truth, 0.8, 0.2), first=0, site="north")
    _labelled_and_scored(mongo_db, version, truth, rng.uniform(size=150), first=1000, site="south")
    _labelled_and_scored(mongo_db, version, truth[:5], rng.uniform(size=5), first=5000, site="east")  # a group of 5: not kept
    checked = datetime(2026, 12, 7, 7, 0, tzinfo=timezone.utc)
    report = model_outcomes(home_of_its_own, by="site")
    record_outcome_check(mongo_db, {**report.as_stored(), "checked_at": checked - timedelta(days=7), "model_version": version, "n": 1})
    assert report.verification.complete  # every recording it scored is labelled here; the check below says otherwise
    partial = {"flagged": 160, "unflagged": 900, "flagged_labelled": 160, "unflagged_labelled": 145}
    record_outcome_check(mongo_db, {**report.as_stored(), "checked_at": checked, "verification": partial})

    app = open_page("models", env)
    shown = metrics(app)
    assert (shown["Checked"], shown["Labelled recordings measured"]) == ("2026-12-07 07:00:00", "305")
    assert shown["Metrics worse than its card"] == str(len(report.overall.worse))
    table = next(frame.value for frame in app.dataframe if "verdict" in frame.value.columns)
    assert table["metric"].tolist() == ["auc", "sensitivity", "specificity", "uar", "brier"]
    auc = report.overall.metric("auc")
    assert table["live"].iloc[0] == round(auc.live.value, 4) and table["cross-validated"].iloc[0] == auc.expected
    assert (table["card 95% low"].iloc[0], table["card 95% high"].iloc[0]) == (round(auc.expected_interval.low, 4), round(auc.expected_interval.high, 4))
    assert "By site, worse in: south" in [c.value for c in app.caption]
    assert ("Labels for 160 of the 160 (100.0%) it flagged and 145 of the 900 (16.1%) it did not: the corrected sensitivity, "
            "specificity and UAR count the rest as the labelled of each kind stand for them.") in [c.value for c in app.caption]
    assert [w.value for w in app.warning] == [report.line()]
    # Each check's AUC with its interval, beside the card's estimate: a model that ages shows it week by week.
    [(spec, frame)] = [(spec, frame) for spec, frame in charts(app) if spec["encoding"]["y"]["title"] == "AUC"]
    assert sorted(frame["series"].unique()) == ["95% high", "95% low", "cross-validated (card)", "on labelled recordings"]
    assert frame["checked_at"].nunique() == 2 and len(frame) == 8
    live = frame[frame["series"] == "on labelled recordings"]["auc"].tolist()
    assert live == [round(auc.live.value, 4)] * 2 and set(frame[frame["series"] == "cross-validated (card)"]["auc"]) == {auc.expected}
    stored = report.as_stored()
    assert list(stored["groups"]) == ["north", "south"] and stored["groups_not_kept"] == 1  # east's 5 recordings are not kept
