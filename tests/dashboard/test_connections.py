"""Unreachable stores: one clear, redacted banner on every page, never a traceback or a password."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.connections import open_mongo, open_redis
from tests.dashboard.conftest import PAGES
from tests.voxflow_cli import free_port
from voxflow.settings import Settings


@pytest.fixture
def dead_env(tmp_path: Path) -> dict[str, str]:
    port = free_port()  # nothing listens there: a closed port
    return {
        "VOXFLOW_HOME": str(tmp_path),
        "VOXFLOW_MONGO_URI": f"mongodb://ops:hunter2secret@127.0.0.1:{port}/?serverSelectionTimeoutMS=300",
        "VOXFLOW_REDIS_URL": f"redis://:hunter2secret@127.0.0.1:{port}/0",
    }


def test_open_reports_unreachable_without_the_password(dead_env: dict[str, str]) -> None:
    settings = Settings(home=dead_env["VOXFLOW_HOME"], mongo_uri=dead_env["VOXFLOW_MONGO_URI"], redis_url=dead_env["VOXFLOW_REDIS_URL"])
    db, mongo_error = open_mongo(settings)
    client, redis_error = open_redis(settings)
    assert db is None and client is None
    assert mongo_error.startswith("MongoDB unreachable at mongodb://ops:***@127.0.0.1:")
    assert redis_error.startswith("Redis unreachable at redis://:***@127.0.0.1:")
    assert "hunter2secret" not in mongo_error + redis_error


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_banner_not_a_traceback(page: str, dead_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    app = open_page(page, dead_env)
    errors = [e.value for e in app.error]
    assert any(e.startswith("MongoDB unreachable at mongodb://ops:***@") for e in errors), errors
    assert any(e.startswith("Redis unreachable at redis://:***@") for e in errors), errors
    shown = " ".join(str(e.value) for kind in ("error", "info", "warning", "markdown", "caption") for e in getattr(app, kind))
    assert "hunter2secret" not in shown and "Traceback" not in shown
