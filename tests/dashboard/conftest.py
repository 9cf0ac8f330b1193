"""Running the dashboard in-process with Streamlit's AppTest under a chosen environment."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import redis
import soundfile as sf
import streamlit as st
from pymongo.database import Database
from streamlit.testing.v1 import AppTest

from features.synth import synth_vowel
from store.mongo import connect_mongo
from tests.voxflow_cli import last_json, run_cli, server_env
from voxflow import services
from voxflow.settings import Settings, get_settings

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ("overview", "queue", "scaling", "runs", "models")


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    """``open_page(page, env)``: the dashboard on ``page`` with exactly the VOXFLOW_/PREFECT_ variables of ``env``."""

    def run(page: str, env: dict[str, str]) -> AppTest:
        for name in list(os.environ):
            if name.startswith(("VOXFLOW_", "PREFECT_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        st.cache_resource.clear()
        st.cache_data.clear()
        app = AppTest.from_file(str(APP), default_timeout=30).switch_page(f"views/{page}.py").run()
        assert not app.exception, [e.value for e in app.exception]
        assert [t.value for t in app.title] == [page.capitalize()]
        return app

    yield run
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def metrics(app: AppTest) -> dict[str, str]:
    """Every st.metric on the page, label -> value as shown."""
    return {m.label: m.value for m in app.metric}


@dataclass(frozen=True)
class Seeded:
    """A database filled by a real ``voxflow analyze`` run, plus documents seeded for producers not built yet."""

    env: dict[str, str]
    summary: dict[str, Any]
    quarantine: list[dict[str, Any]]
    results: list[dict[str, Any]]
    now: datetime


def _corpus(root: Path) -> None:
    """Four good clips and four that the gate rejects (empty, text, silence, too short)."""
    rate = 16_000
    root.mkdir()
    for i, f0 in enumerate((110, 160, 210, 260)):
        sf.write(root / f"clip{i}.wav", synth_vowel(f0_hz=f0, duration_s=1.5, sr=rate, seed=i), rate)
    (root / "empty.wav").write_bytes(b"")
    (root / "text.flac").write_text("not audio\n" * 30)
    sf.write(root / "silence.wav", np.zeros(rate, dtype=np.float32), rate)
    sf.write(root / "short.wav", synth_vowel(f0_hz=120, duration_s=0.05, sr=rate, seed=9), rate)


def seed_future_producers(db: Database, client: redis.Redis, *, model_version: str, now: datetime) -> None:
    """SEEDED, not produced by an analyze run: a backup, model records and a queue with a consumer, in their documented shapes."""
    db["backups"].insert_one({
        "backup_id": "seeded-backup-1", "started_at": now - timedelta(hours=3, minutes=2), "finished_at": now - timedelta(hours=3),
        "path": "/backups/seeded-backup-1", "counts": {"predictions": 4, "runs": 1}, "verified": True, "status": "completed",
    })
    db["models"].insert_many([
        {"version": model_version, "status": "champion", "feature_version": 1, "created_at": now - timedelta(days=5),
         "metrics": {"auc": 0.6138, "uar": 0.5561, "sensitivity": 0.8582, "specificity": 0.2539},
         "training": {"n": 208, "n_positive": 151}},
        {"version": "xgb-fv1-seededchal", "status": "challenger", "feature_version": 1, "created_at": now - timedelta(days=1),
         "metrics": {"auc": 0.6512, "uar": 0.6003, "sensitivity": 0.80, "specificity": 0.40}},
    ])
    start_ms = int(now.timestamp() * 1000) - 300_000
    for i in range(150):
        client.xadd("voxflow:queue", {"path": f"/incoming/{i}.wav"}, id=f"{start_ms + i}-0")
    client.xgroup_create("voxflow:queue", "analyzers", id="0")
    client.xreadgroup("analyzers", "analyzer-1", {"voxflow:queue": ">"}, count=20)


@pytest.fixture(scope="session")
def seeded(test_settings: Settings, prefect_api: str, redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """One real analyze run (CLI, Prefect, Dask, stores: runs, predictions, quarantine, scaling events, worker samples), then the seeded rest."""
    redis_client.flushdb()
    env = server_env(
        home=test_settings.home, redis_url=services.redis_url(test_settings), mongo_uri=services.mongo_uri(test_settings),
        mongo_db=f"dash_{uuid.uuid4().hex[:10]}", prefect_api=prefect_api,
    )
    corpus = tmp_path_factory.mktemp("dash") / "corpus"
    _corpus(corpus)
    summary = last_json(run_cli(["analyze", str(corpus), "--json"], env))
    quarantine = last_json(run_cli(["quarantine", "--run", summary["run_id"], "--json"], env))
    results = last_json(run_cli(["results", "--run", summary["run_id"], "--limit", "100", "--json"], env))
    now = datetime.now(timezone.utc)
    db = connect_mongo(env["VOXFLOW_MONGO_URI"])[env["VOXFLOW_MONGO_DB"]]
    seed_future_producers(db, redis_client, model_version=summary["model_version"], now=now)
    dashboard_env = {
        "VOXFLOW_HOME": env["VOXFLOW_HOME"], "VOXFLOW_REDIS_URL": env["VOXFLOW_REDIS_URL"],
        "VOXFLOW_MONGO_URI": env["VOXFLOW_MONGO_URI"], "VOXFLOW_MONGO_DB": env["VOXFLOW_MONGO_DB"],
        "VOXFLOW_DASK_MAX_WORKERS": "4", "VOXFLOW_DASHBOARD_TIMEZONE": "Asia/Tokyo",
        "PREFECT_UI_URL": "http://prefect.example:4200",
    }
    return Seeded(dashboard_env, summary, quarantine, results, now)
