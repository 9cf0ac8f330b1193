"""Unreachable stores, at start-up or later: one clear, redacted banner on every page, never a traceback or a password."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pymongo.errors
import pymongo.uri_parser
import pytest
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest

from dashboard.connections import DashboardStores, open_mongo, open_redis
from tests.dashboard.conftest import PAGES, metrics
from tests.proxy import TcpProxy, proxied_redis
from tests.voxflow_cli import reserve_port
from voxflow import services
from voxflow.settings import Settings


@pytest.fixture
def dead_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with reserve_port() as held:  # bound, never listening, held to the end: a closed port no server can take meanwhile
        port = held.getsockname()[1]
        yield {
            "VOXFLOW_HOME": str(tmp_path),
            "VOXFLOW_MONGO_URI": f"mongodb://ops:hunter2secret@127.0.0.1:{port}/?serverSelectionTimeoutMS=300",
            "VOXFLOW_REDIS_URL": f"redis://:hunter2secret@127.0.0.1:{port}/0",
        }


def test_open_reports_unreachable_without_the_password(dead_env: dict[str, str]) -> None:
    settings = Settings(home=dead_env["VOXFLOW_HOME"], mongo_uri=dead_env["VOXFLOW_MONGO_URI"], redis_url=dead_env["VOXFLOW_REDIS_URL"])
    db, mongo_error, _ = open_mongo(settings)
    client, redis_error, _ = open_redis(settings)
    assert db is None and client is None
    assert mongo_error.startswith("MongoDB unreachable at mongodb://ops:***@127.0.0.1:")
    assert redis_error.startswith("Redis unreachable at redis://:***@127.0.0.1:")
    assert "hunter2secret" not in mongo_error + redis_error


@pytest.mark.skipif("VOXFLOW_TEST_MONGO_URI" in os.environ, reason="the embedded nx-27017 has no auth")
def test_a_user_for_a_mongodb_without_auth_is_a_banner_without_its_password(test_settings: Settings) -> None:
    # pymongo's login read the answer of a server without users (nx-27017) as a KeyError: 'payload' traceback.
    uri = services.mongo_uri(test_settings)
    settings = test_settings.model_copy(update={"mongo_uri": SecretStr(uri.replace("mongodb://", "mongodb://ops:hunter2secret@"))})
    db, mongo_error, _ = open_mongo(settings)
    assert db is None and mongo_error.startswith(f"MongoDB at {uri.removeprefix('mongodb://').rstrip('/')} refused authentication ")
    assert "hunter2secret" not in mongo_error


def test_a_refused_user_or_request_is_not_called_unreachable(test_settings: Settings, mongo_client: pymongo.MongoClient) -> None:
    scheme, rest = services.redis_url(test_settings).split("://", 1)
    settings = test_settings.model_copy(update={"redis_url": SecretStr(f"{scheme}://bob:hunter2secret@{rest}")})
    client, redis_error, url = open_redis(settings)
    assert client is None and redis_error.startswith(f"Redis at {services.redact(url)} refused the configured user: ")
    assert "hunter2secret" not in redis_error

    with pytest.raises(pymongo.errors.OperationFailure) as refused:  # nx-27017 answers, and says no
        list(mongo_client["voxflow"]["predictions"].aggregate([{"$bogus": 1}]))
    stores = DashboardStores(None, None, mongo_uri=services.mongo_uri(test_settings))
    assert stores.lost(refused.value) == f"MongoDB at {services.mongo_uri(test_settings)} refused a query: Aggregation stage '$bogus' not supported"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_banner_not_a_traceback(page: str, dead_env: dict[str, str], open_page: Callable[..., AppTest]) -> None:
    app = open_page(page, dead_env)
    errors = [e.value for e in app.error]
    assert any(e.startswith("MongoDB unreachable at mongodb://ops:***@") for e in errors), errors
    assert any(e.startswith("Redis unreachable at redis://:***@") for e in errors), errors
    shown = " ".join(str(e.value) for kind in ("error", "info", "warning", "markdown", "caption") for e in getattr(app, kind))
    assert "hunter2secret" not in shown and "Traceback" not in shown


def _proxied_mongo(uri: str) -> tuple[TcpProxy, str]:
    """A proxy to the single MongoDB server at ``uri`` and a URI through it."""
    [(host, port)] = pymongo.uri_parser.parse_uri(uri)["nodelist"]
    proxy = TcpProxy((host, port)).start()
    return proxy, f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"


@pytest.mark.parametrize("store", ["redis", "mongo"])
def test_a_store_lost_after_connecting_shows_the_banner_then_reconnects(
    store: str, test_settings: Settings, tmp_path: Path, open_page: Callable[..., AppTest],
) -> None:
    proxy, url = (proxied_redis(services.redis_url(test_settings)) if store == "redis" else _proxied_mongo(services.mongo_uri(test_settings)))
    env = {
        "VOXFLOW_HOME": str(tmp_path), "VOXFLOW_MONGO_DB": f"lost_{uuid.uuid4().hex[:10]}",
        "VOXFLOW_REDIS_URL": services.redis_url(test_settings), "VOXFLOW_MONGO_URI": services.mongo_uri(test_settings),
        f"VOXFLOW_{'REDIS_URL' if store == 'redis' else 'MONGO_URI'}": url,
    }
    try:
        app = open_page("overview", env)
        assert not app.error and metrics(app)["Predictions stored"] == "0"

        proxy.close()  # the server goes away under the open connections
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        [banner] = [e.value for e in app.error]
        assert banner.startswith(f"{'Redis' if store == 'redis' else 'MongoDB'} unreachable at {url.split('/?')[0]}"), banner
        if store == "redis":  # the Overview reads MongoDB: it still shows, without what Redis gave
            assert metrics(app)["Predictions stored"] == "0" and metrics(app)["Backlog"] == "—"
        else:
            assert [i.value for i in app.info] == ["The overview needs MongoDB; it shows again once the server answers."]

        proxy.start()  # back on the same port: the next refresh connects again
        app.run()
        assert not app.exception and not app.error, [e.value for e in app.error]
        assert metrics(app)["Predictions stored"] == "0"
    finally:
        proxy.release()
