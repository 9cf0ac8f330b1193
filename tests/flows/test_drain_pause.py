"""A drain pauses between batches for a forget (flows/drain.py, give_way), on the real Redis and MongoDB."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator

import psutil
import pytest
import redis

from flows.drain import give_way
from store.locks import DRAIN_LOCK, RedisLock, hold_lock, lock_key, wanted, wanting
from store.runs import refuse_while_running
from tasks.persist import Stores, open_stores
from voxflow.errors import LockError
from voxflow.settings import Settings

log = logging.getLogger(__name__)


@pytest.fixture
def stores(home_of_its_own: Settings, redis_client: redis.Redis) -> Iterator[Stores]:
    redis_client.delete(lock_key(DRAIN_LOCK), f"{lock_key(DRAIN_LOCK)}:wanted")
    with open_stores(home_of_its_own) as opened:
        me = psutil.Process()
        opened.results.start_run({"run_id": "drain-1", "status": "running", "host": socket.gethostname(), "pid": me.pid, "pid_started": me.create_time()})
        yield opened
    redis_client.delete(lock_key(DRAIN_LOCK), f"{lock_key(DRAIN_LOCK)}:wanted")


def _status(stores: Stores) -> str:
    return stores.results.find_run("drain-1")["status"]


def _forget_in_a_thread(
    client: redis.Redis, stores: Stores, seen: dict[str, Any], *, then: Callable[[], None] = lambda: None
) -> threading.Thread:
    """What a forget does: ask for the drain lock, take it once the drain lets go, check the runs, release it, and
    (after ``then``, while still asking) stop asking."""

    def forget() -> None:
        try:
            with wanting(client, DRAIN_LOCK, ttl_s=5):
                with hold_lock(client, DRAIN_LOCK, ttl_s=5, wait_s=10):
                    seen["status"] = _status(stores)
                    refuse_while_running(stores.results, "forgetting", harm="lost", force=False, paused_wait=True)
                    with pytest.raises(LockError, match=r"^not rebuilding while runs are running \(1: drain-1 "):
                        refuse_while_running(stores.results, "rebuilding", harm="lost", force=False)  # a paused run is not done
                    time.sleep(0.3)
                then()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            seen["error"] = exc

    thread = threading.Thread(target=forget)
    thread.start()
    deadline = time.monotonic() + 5
    while not wanted(client, DRAIN_LOCK):
        assert time.monotonic() < deadline, "the forget never asked for the drain lock"
        time.sleep(0.01)
    return thread


def test_a_drain_pauses_while_a_forget_holds_its_lock_then_goes_on(stores: Stores, redis_client: redis.Redis) -> None:
    with hold_lock(redis_client, DRAIN_LOCK, ttl_s=5) as lock:
        assert give_way(lock, stores, run_id="drain-1", logger=log, retake_wait_s=0.3) is True  # nobody waiting: nothing changes
        assert (_status(stores), redis_client.get(lock_key(DRAIN_LOCK))) == ("running", lock.token)

        seen: dict[str, Any] = {}
        forget = _forget_in_a_thread(redis_client, stores, seen)
        assert give_way(lock, stores, run_id="drain-1", logger=log, retake_wait_s=0.3) is True
        forget.join()
        assert "error" not in seen, seen.get("error")
        assert seen["status"] == "paused"  # while the forget held the lock
        assert (_status(stores), redis_client.get(lock_key(DRAIN_LOCK))) == ("running", lock.token)
        assert lock.renew() is True  # renewed again from here on


def test_a_drain_whose_lock_another_drain_took_meanwhile_ends(stores: Stores, redis_client: redis.Redis) -> None:
    newer = RedisLock(redis_client, DRAIN_LOCK, ttl_s=30)
    with hold_lock(redis_client, DRAIN_LOCK, ttl_s=5) as lock:
        seen: dict[str, Any] = {}
        # The next scheduled drain takes the lock after the forget, before this one comes back.
        forget = _forget_in_a_thread(redis_client, stores, seen, then=lambda: seen.setdefault("newer", newer.acquire()))
        assert give_way(lock, stores, run_id="drain-1", logger=log, retake_wait_s=0.3) is False
        forget.join()
        assert "error" not in seen, seen.get("error")
        assert seen["newer"] is True
    assert redis_client.get(lock_key(DRAIN_LOCK)) == newer.token  # leaving did not release the newer drain's lock
    assert newer.release()
