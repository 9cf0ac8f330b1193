"""Shared by the flow tests: the CLI's settings in this process, named Redis clients, repeated predictions, and the
events a flow run sent (input drift, outcomes)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
import redis
from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
from pymongo.collection import Collection

from flows.drift import SHIFT_EVENT
from store.cache import connect_redis
from store.mongo import connect_mongo
from tests.voxflow_cli import prefect_api_call
from voxflow.orchestration import prefect_api
from voxflow.settings import Settings, get_settings


@pytest.fixture
def in_process(cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI's environment in this process, backups under ``tmp_path``: flows run here on the session's Prefect server."""
    for key, value in cli_env.items():
        if key.startswith("VOXFLOW_") or key == "PREFECT_API_URL":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("VOXFLOW_BACKUP_DIR", str(tmp_path / "backups"))
    get_settings.cache_clear()
    settings = get_settings()
    # No run logs to the API: its log worker would flush after the session's Prefect server stopped.
    with prefect_api(settings), temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: False}), connect_mongo(cli_env["VOXFLOW_MONGO_URI"]) as client:
        client[settings.mongo_db]["runs"].insert_one({"run_id": "r1", "status": "completed"})
        yield settings
        client.drop_database(settings.mongo_db)
    get_settings.cache_clear()


def name_redis_clients(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[str]:
    """Give every Redis client ``module`` connects a name of its own, and keep the clients alive (only close() ends them)."""
    names: list[str] = []
    clients: list[redis.Redis] = []

    def connect_named(url: str) -> redis.Redis:
        client = connect_redis(url)
        names.append(f"vxtest-{uuid.uuid4().hex[:10]}")
        client.client_setname(names[-1])
        clients.append(client)
        return client

    monkeypatch.setattr(module, "connect_redis", connect_named)
    return names


def still_connected(redis_client: redis.Redis, names: list[str], *, timeout_s: float = 3.0) -> set[str]:
    """The clients named ``names`` that Redis still has a connection of, once closed ones had time to go."""
    deadline = time.monotonic() + timeout_s
    while (open_names := {client["name"] for client in redis_client.client_list()} & set(names)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_names


def repeated_hashes(predictions: Collection) -> list[dict[str, Any]]:
    """Each audio_sha256 stored more than once in ``predictions``, with its count (empty: every file scored once)."""
    return list(predictions.aggregate([{"$group": {"_id": "$audio_sha256", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}]))


def flow_run_events(env: dict[str, str], event: str, flow_run_id: str, *, at_least: int, timeout_s: float = 30) -> list[dict]:
    """The ``event`` events of flow run ``flow_run_id`` the Prefect API holds, once it holds ``at_least`` (they are
    sent asynchronously); other tests' runs send theirs to the same server."""
    deadline = time.monotonic() + timeout_s
    while True:
        wanted = {"event": {"name": [event]}, "related": {"id": [f"prefect.flow-run.{flow_run_id}"]}}
        found = prefect_api_call(env, "/events/filter", {"filter": wanted, "limit": 50})
        if len(found["events"]) >= at_least or time.monotonic() > deadline:
            return found["events"]
        time.sleep(0.5)


def shift_events(env: dict[str, str], flow_run_id: str, *, at_least: int, timeout_s: float = 30) -> list[dict]:
    """The :data:`SHIFT_EVENT` events of flow run ``flow_run_id`` (:func:`flow_run_events`)."""
    return flow_run_events(env, SHIFT_EVENT, flow_run_id, at_least=at_least, timeout_s=timeout_s)
