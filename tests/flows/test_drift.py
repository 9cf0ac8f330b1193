"""The input-drift flow: the champion's last day against its training data, a WARNING and a Prefect event on a shift."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np
import pytest

from flows.drift import input_drift
from models.registry import shipped_bundle
from store.mongo import connect_mongo
from tests.helpers import above_training, like_training, store_scored
from tests.flows.conftest import shift_events
from voxflow.settings import Settings


def test_a_shift_over_the_day_is_a_warning_and_an_event_a_quiet_day_neither(
    in_process: Settings, cli_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    card = shipped_bundle().card
    profile = card.input_profile["features"]
    now = datetime.now(timezone.utc)
    with connect_mongo(cli_env["VOXFLOW_MONGO_URI"]) as client:
        db = client[in_process.mongo_db]
        like = np.column_stack([like_training(profile[name]) for name in card.feature_names])
        store_scored(in_process, db, now=now, features=like, first=0, hours_ago=3, version=card.version, run_id="drain-a")
        with caplog.at_level(logging.INFO):
            quiet_run = input_drift(hours=24, return_state=True)
        quiet = quiet_run.result()
        assert (quiet["n"], quiet["shifted_count"]) == (208, 0), quiet["summary"]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "Input drift" in r.getMessage()]

        above = np.column_stack([above_training(profile[name], 300) for name in card.feature_names])
        store_scored(in_process, db, now=now, features=above, first=1000, hours_ago=1, version=card.version, run_id="drain-b")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            shifted_run = input_drift(hours=24, return_state=True)
        shifted = shifted_run.result()
    assert shifted["n"] == 508 and shifted["shifted_count"] > 40 and shifted["scored"] == 508, shifted["summary"]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"Input drift: {shifted['summary']}. Scores of recordings unlike the training data are no evidence"), warning
    [event] = shift_events(cli_env, str(shifted_run.state_details.flow_run_id), at_least=1)
    assert event["resource"] == {"prefect.resource.id": f"voxflow.model.{card.version}", "prefect.resource.name": card.version}
    payload = event["payload"]
    assert (payload["window_hours"], payload["shifted_count"], payload["n"], payload["summary"]) == (24.0, shifted["shifted_count"], 508, shifted["summary"])
    assert payload["features"] == [s["feature"] for s in shifted["shifted"][:5]]
    assert shift_events(cli_env, str(quiet_run.state_details.flow_run_id), at_least=1, timeout_s=2) == []  # a quiet day: none
