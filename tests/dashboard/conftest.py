"""Running the dashboard in-process with Streamlit's AppTest under a chosen environment."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
import soundfile as sf
import streamlit as st
from streamlit.testing.v1 import AppTest

from features.synth import synth_vowel
from store.queue import FileQueue, QueueItem
from tests.voxflow_cli import last_json, run_cli, server_env
from voxflow import services
from voxflow.demo import write_demo_corpus
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


@pytest.fixture(scope="module")
def empty_env(test_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An empty MongoDB database and an empty embedded Redis of its own (one per test module)."""
    home = tmp_path_factory.mktemp("empty")
    yield {"VOXFLOW_HOME": str(home), "VOXFLOW_MONGO_URI": services.mongo_uri(test_settings), "VOXFLOW_MONGO_DB": f"empty_{uuid.uuid4().hex[:10]}"}
    services.stop_service(Settings(home=Path(home)), "redis")


def metrics(app: AppTest) -> dict[str, str]:
    """Every st.metric on the page, label -> value as shown."""
    return {m.label: m.value for m in app.metric}


def charts(app: AppTest) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Every Vega-Lite chart on the page, in order: its spec and the data it was given."""
    shown = []
    for chart in app.get("vega_lite_chart"):
        [dataset] = chart.proto.datasets
        shown.append((json.loads(chart.proto.spec), pa.ipc.open_stream(dataset.data.data).read_pandas()))
    return shown


@dataclass(frozen=True)
class Seeded:
    """A database and Redis filled by the real producers (see :func:`seeded`)."""

    env: dict[str, str]
    summary: dict[str, Any]
    quarantine: list[dict[str, Any]]
    results: list[dict[str, Any]]
    now: datetime  # just before the queue was filled
    backup: dict[str, Any]
    models: list[dict[str, Any]]


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


def train_models(env: dict[str, str], root: Path) -> list[dict[str, Any]]:
    """Two models by ``voxflow train``: a champion (promoted) and a challenger; returns ``voxflow models list``."""
    for seed, promote in ((1, ["--promote"]), (2, [])):
        manifest = write_demo_corpus(root / f"labelled{seed}", n=20 + 4 * seed, seed=20261128 + seed)
        last_json(run_cli(["train", str(manifest), *promote], env))
    return last_json(run_cli(["models", "list", "--json"], env))


def enqueue_and_hold(client: redis.Redis, *, files: int, held: int) -> None:
    """``files`` entries on the intake queue, of which consumer ``analyzer-1`` has read ``held`` and not acknowledged them."""
    queue = FileQueue(client)
    queue.enqueue([QueueItem(path=f"/incoming/{i}.wav") for i in range(files)])
    queue.read("analyzer-1", count=held, claim_idle_s=300)


@pytest.fixture(scope="session")
def seeded(test_settings: Settings, prefect_api: str, redis_client: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Every producer by its real command: train (champion, challenger), one analyze run (runs, predictions,
    quarantine, scaling events, worker samples), a backup, and a queue that a consumer is working on."""
    redis_client.flushdb()
    env = server_env(
        home=test_settings.home, redis_url=services.redis_url(test_settings), mongo_uri=services.mongo_uri(test_settings),
        mongo_db=f"dash_{uuid.uuid4().hex[:10]}", prefect_api=prefect_api,
    )
    root = tmp_path_factory.mktemp("dash")
    models = train_models(env, root)
    _corpus(root / "corpus")
    summary = last_json(run_cli(["analyze", str(root / "corpus"), "--json"], env))
    quarantine = last_json(run_cli(["quarantine", "--run", summary["run_id"], "--json"], env))
    results = last_json(run_cli(["results", "--run", summary["run_id"], "--limit", "100", "--json"], env))
    backup = last_json(run_cli(["backup", "--json"], {**env, "VOXFLOW_BACKUP_DIR": str(root / "backups")}))
    now = datetime.now(timezone.utc)
    enqueue_and_hold(redis_client, files=150, held=20)
    dashboard_env = {
        "VOXFLOW_HOME": env["VOXFLOW_HOME"], "VOXFLOW_REDIS_URL": env["VOXFLOW_REDIS_URL"],
        "VOXFLOW_MONGO_URI": env["VOXFLOW_MONGO_URI"], "VOXFLOW_MONGO_DB": env["VOXFLOW_MONGO_DB"],
        "VOXFLOW_DASK_MAX_WORKERS": "4", "VOXFLOW_DASHBOARD_TIMEZONE": "Asia/Tokyo",
        "PREFECT_UI_URL": "http://prefect.example:4200",
    }
    return Seeded(dashboard_env, summary, quarantine, results, now, backup, models)
