"""Shared real-server fixtures: Redis, MongoDB (nx-27017, or VOXFLOW_TEST_MONGO_URI), Prefect, VOICED data.

Servers are started once per session under a temporary voxflow home and stopped at the end.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterator

import hypothesis
import pandas as pd
import pymongo
import pytest
import redis
from pydantic import SecretStr
from pymongo.database import Database

from store.cache import connect_redis
from store.mongo import connect_mongo
from tests.voxflow_cli import close_env_clients, server_env
from voxflow import services
from voxflow.settings import Settings

# Property-based tests draw the same examples on every run (a failure reproduces, CI cannot flake)
# and keep no example database in the working tree: loaded here so every test file gets it, alone or not.
hypothesis.settings.register_profile("voxflow", derandomize=True, database=None)
hypothesis.settings.load_profile("voxflow")

# A database number of its own (VOXFLOW_TEST_REDIS_DB) lets two test sessions share the system Redis; each further
# pytest-xdist worker of a session (gw1, ...) takes the number below it.
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
SYSTEM_REDIS_URL = f"redis://127.0.0.1:6379/{int(os.environ.get('VOXFLOW_TEST_REDIS_DB', '15')) - _XDIST_WORKER}"
VOICED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voiced"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (``make test``), the tests of the seeded dashboard go to one worker, which seeds it
    once (~70 s); the rest spread over the workers."""
    for item in items:
        if "seeded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("seeded"))


def _system_redis_answers() -> bool:
    client = redis.Redis.from_url(SYSTEM_REDIS_URL, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """Give each test's changes to ``os.environ`` back when it ends, whoever made them.

    A Dask nanny in this process sets its workers' variables here (``OMP_NUM_THREADS=1``,
    ``PYTHONHASHSEED``, ...) and never unsets them; later tests' CLI processes would inherit them.
    What session and module fixtures set stays: they run before this snapshot.
    """
    saved = dict(os.environ)
    yield
    for name in os.environ.keys() - saved.keys():
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@pytest.fixture(scope="session")
def voxflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh voxflow home for the session (short, so the embedded Redis socket fits)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def test_settings(voxflow_home: Path) -> Iterator[Settings]:
    """Settings for the session: a system Redis database when it answers, MongoDB from VOXFLOW_TEST_MONGO_URI or embedded."""
    redis_url = None
    if _system_redis_answers():
        redis_url = SYSTEM_REDIS_URL
        redis.Redis.from_url(SYSTEM_REDIS_URL).flushdb()
    settings = Settings(
        home=voxflow_home,
        redis_url=redis_url,
        mongo_uri=os.environ.get("VOXFLOW_TEST_MONGO_URI"),
        # By its alias: the field name would lose to a PREFECT_API_URL in the environment.
        PREFECT_API_URL=None,
    )
    yield settings
    close_env_clients()
    services.stop_services(settings)


@pytest.fixture(scope="session")
def mongo_client(test_settings: Settings) -> Iterator[pymongo.MongoClient]:
    client = connect_mongo(services.mongo_uri(test_settings))
    yield client
    client.close()


@pytest.fixture
def mongo_db(mongo_client: pymongo.MongoClient) -> Iterator[Database]:
    """A database of its own for each test, dropped afterwards."""
    name = f"vxtest_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture
def home_of_its_own(test_settings: Settings, tmp_path: Path, mongo_db: Database) -> Settings:
    """The session's settings with a home of the test's own (no feature store, no models) and ``mongo_db``, on the
    session's servers (its MongoDB named: an unset URI would start an embedded server under the new home)."""
    return test_settings.model_copy(update={"home": tmp_path, "mongo_uri": SecretStr(services.mongo_uri(test_settings)), "mongo_db": mongo_db.name})


@pytest.fixture(scope="session")
def redis_client(test_settings: Settings) -> Iterator[redis.Redis]:
    client = connect_redis(services.redis_url(test_settings))
    yield client
    client.close()


@pytest.fixture(scope="session")
def prefect_api(test_settings: Settings) -> str:
    """URL of the session's embedded Prefect server (started on first use, ~15 s)."""
    return services.prefect_api_url(test_settings)


@pytest.fixture(scope="session")
def voiced_dir() -> Path:
    """The VOICED recordings shared beside the repository."""
    if not VOICED_DIR.is_dir():
        pytest.skip(f"VOICED recordings not found at {VOICED_DIR} (../shared is absent)")
    return VOICED_DIR


@pytest.fixture
def voiced_manifest(voiced_dir: Path, tmp_path: Path) -> Path:
    """A CSV manifest of the 208 VOICED records (path, subject_id)."""
    records = sorted(voiced_dir.glob("voice*.hea"))
    manifest = tmp_path / "voiced.csv"
    pd.DataFrame({"path": [str(p) for p in records], "subject_id": [p.stem for p in records]}).to_csv(manifest, index=False)
    return manifest


@pytest.fixture
def cli_env(test_settings: Settings, prefect_api: str, redis_client: redis.Redis) -> dict[str, str]:
    """Environment for one test's CLI runs: the session's servers, its own MongoDB database, a clean Redis db."""
    redis_client.flushdb()
    return server_env(
        home=test_settings.home, redis_url=services.redis_url(test_settings), mongo_uri=services.mongo_uri(test_settings),
        mongo_db=f"t_{uuid.uuid4().hex[:10]}", prefect_api=prefect_api,
    )


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """The address of a listener that accepts connections and never answers (an HTTP port, a stopped scheduler)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
        for connection in accepted:
            connection.close()
