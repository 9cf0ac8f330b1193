"""The stores a flow run opens."""

from __future__ import annotations

import threading
import time

from tasks.persist import open_stores
from voxflow.settings import Settings


def test_stores_close_their_clients_when_the_run_ends(test_settings: Settings, redis_client: object) -> None:
    # Left open, pymongo's exit handler waits for its monitor threads: ~0.4 s at the end of every command.
    before = set(threading.enumerate())
    with open_stores(test_settings) as stores:
        stores.mongo.admin.command("ping")
        stores.redis.ping()
        monitors = [t for t in set(threading.enumerate()) - before if t.name.startswith("pymongo")]
        assert monitors, "the run's MongoClient started no monitor threads"
    deadline = time.monotonic() + 3.0
    while any(t.is_alive() for t in monitors) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.is_alive() for t in monitors)
