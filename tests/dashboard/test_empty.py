"""A fresh install: every page explains what is missing, with no exception and no made-up numbers."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Callable

import pytest
from streamlit.testing.v1 import AppTest

from store.mongo import connect_mongo
from tests.dashboard.conftest import PAGES, metrics
from voxflow.settings import Settings

EXPECTED_NOTES = {
    "overview": "No runs yet",
    "queue": "No queue yet",
    "scaling": "No worker samples or scaling events",
    "runs": "No runs yet",
    "models": "No clips scored by the champion this week",
}


@pytest.mark.parametrize("page", PAGES)
def test_empty_database(page: str, empty_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    app = open_page(page, empty_env)
    assert not app.error, [e.value for e in app.error]
    notes = [i.value for i in app.info]
    assert any(n.startswith(EXPECTED_NOTES[page]) or EXPECTED_NOTES[page] in n for n in notes), notes
    shown = metrics(app)
    if page == "overview":
        assert shown["Predictions stored"] == "0" and shown["Runs (last 1 h)"] == "0"
        assert shown["Quarantine rate (last 1 h)"] == shown["Latency p95"] == shown["Backlog"] == "—"
    if page == "models":
        assert shown["Clips scored this week"] == "0" and any(n.startswith("No backups yet") for n in notes)
        assert any(n.startswith("No outcomes check of the champion yet") for n in notes), notes


@pytest.fixture(scope="module")
def pre_rollup_env(test_settings: Settings, empty_env: dict[str, str]) -> dict[str, str]:
    """A database with a prediction written before the rollups existed (no counts documents)."""
    env = {**empty_env, "VOXFLOW_MONGO_DB": f"prerollup_{uuid.uuid4().hex[:10]}"}
    db = connect_mongo(env["VOXFLOW_MONGO_URI"])[env["VOXFLOW_MONGO_DB"]]
    db["predictions"].insert_one({
        "audio_sha256": "0" * 64, "model_version": "xgb-old", "score": 0.7, "label": "pathological", "threshold": 0.5,
        "run_id": "r-old", "created_at": datetime.now(timezone.utc),
    })
    return env


@pytest.mark.parametrize("page", ["overview", "models"])
def test_results_from_before_the_rollups_are_explained(page: str, pre_rollup_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    app = open_page(page, pre_rollup_env)
    assert not app.error, [e.value for e in app.error]
    assert any("rebuilds the counts" in w.value for w in app.warning), [w.value for w in app.warning]


@pytest.mark.parametrize("page", ["overview", "models"])
def test_no_rollup_note_on_an_empty_database(page: str, empty_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    assert not any("rebuilds the counts" in w.value for w in open_page(page, empty_env).warning)
