"""The model-outcomes flow: the champion on its labelled predictions, a WARNING and a Prefect event when it does worse
than its card says, neither when it does as well."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pymongo.database import Database

from flows.outcomes import WORSE_EVENT, model_outcomes_check, outcomes_markdown
from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL
from models.outcomes import measure
from models.registry import shipped_bundle
from store.labels import LabelStore
from store.mongo import ResultStore, connect_mongo
from store.outcome_checks import last_outcome_check
from tasks.outcomes import OutcomeReport
from tests.flows.conftest import flow_run_events
from tests.voxflow_cli import prefect_api_call
from voxflow.settings import Settings


def _store(db: Database, version: str, truth: np.ndarray, scores: np.ndarray, *, first: int, site: str) -> None:
    hashes = [f"{first + i:064x}" for i in range(len(truth))]
    LabelStore(db).replace([
        {"audio_sha256": sha, "label": POSITIVE_LABEL if t else NEGATIVE_LABEL, "subject_id": f"s{first + i}", "path": None, "source": "t",
         "original_label": "", "metadata": {"site": site}}
        for i, (sha, t) in enumerate(zip(hashes, truth))
    ])
    now = datetime.now(timezone.utc)
    ResultStore(db).insert_predictions([
        {"audio_sha256": sha, "model_version": version, "run_id": "r", "score": float(s), "label": POSITIVE_LABEL if s >= 0.5 else NEGATIVE_LABEL,
         "created_at": now}
        for sha, s in zip(hashes, scores)
    ])


def test_a_site_where_the_model_fails_is_a_warning_and_an_event_a_good_week_neither(
    in_process: Settings, cli_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    version = shipped_bundle().card.version
    rng = np.random.default_rng(8)
    truth = rng.uniform(size=160) < 0.6
    with connect_mongo(cli_env["VOXFLOW_MONGO_URI"]) as client:
        db = client[in_process.mongo_db]
        _store(db, version, truth, np.where(truth, 0.75, 0.3) + rng.normal(0, 0.15, 160), first=0, site="north")  # it separates them well
        with caplog.at_level(logging.INFO):
            good_run = model_outcomes_check(days=7, by="site", return_state=True)
        good = good_run.result()
        assert good["n"] == 160 and good["worse"] == [] and good["groups"]["north"]["worse"] == [], good["summary"]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

        _store(db, version, truth, rng.uniform(size=160), first=1000, site="south")  # chance there: a broken microphone
        caplog.clear()
        with caplog.at_level(logging.INFO):
            bad_run = model_outcomes_check(days=7, by="site", return_state=True)
        bad = bad_run.result()
        recorded = last_outcome_check(db, version)  # for the dashboard's Models page
    assert (recorded["flow_run_id"], recorded["summary"], recorded["n"], recorded["days"]) == (str(bad_run.state_details.flow_run_id), bad["summary"], 320, 7.0)
    assert recorded["groups"] == {name: {**group, "calibration": []} for name, group in bad["groups"].items()} and recorded["checked_at"] > datetime.now(timezone.utc) - timedelta(minutes=5)
    assert "auc" in bad["groups"]["south"]["worse"] and bad["groups"]["north"]["worse"] == [], bad["groups"]
    assert bad["summary"].endswith("south (320 recordings)") and "by site, worse in south" in bad["summary"], bad["summary"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"Outcomes: {bad['summary']}. The model screens these recordings worse than its cross-validation promised"), warning
    [event] = flow_run_events(cli_env, WORSE_EVENT, str(bad_run.state_details.flow_run_id), at_least=1)
    assert event["resource"] == {"prefect.resource.id": f"voxflow.model.{version}", "prefect.resource.name": version}
    payload = event["payload"]
    assert (payload["summary"], payload["n"], payload["worse"], payload["by"], payload["days"]) == (bad["summary"], 320, bad["worse"], "site", 7.0)
    assert payload["groups_worse"] == {"south": bad["groups"]["south"]["worse"]}
    assert flow_run_events(cli_env, WORSE_EVENT, str(good_run.state_details.flow_run_id), at_least=1, timeout_s=2) == []
    # The flow run's artifact in the Prefect UI: what the check keeps, as a table.
    flow_run_id = str(bad_run.state_details.flow_run_id)
    [artifact] = prefect_api_call(cli_env, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert (artifact["key"], artifact["description"]) == ("model-outcomes", bad["summary"])
    auc = next(m for m in bad["metrics"] if m["metric"] == "auc")
    live, card = auc["live"], auc["expected_interval"]
    assert (f"| auc | {live['value']:.3f} ({live['low']:.3f}-{live['high']:.3f}) | {card['value']:.3f} ({card['low']:.3f}-{card['high']:.3f}) | "
            f"{auc['verdict']} |") in artifact["data"], artifact["data"]
    assert "By site (97.5% intervals):" in artifact["data"] and "| south | 160 |" in artifact["data"], artifact["data"]


def test_a_check_of_few_recordings_shows_no_metric_in_its_artifact() -> None:
    few = measure(np.r_[np.ones(12, int), np.zeros(12, int)], np.linspace(0, 1, 24), np.linspace(0, 1, 24) > 0.5, {"auc": 0.7})
    report = OutcomeReport("v1", POSITIVE_LABEL, 24, 24, 0, 0, True, None, few, "site", {"a": few})
    text = outcomes_markdown(report.as_stored())
    assert text == ("# Outcomes of v1\n\n24 recordings measured: fewer than 30, their metrics are not kept\n\n"
                    "1 group of fewer than 30 recordings is not shown.\n")
