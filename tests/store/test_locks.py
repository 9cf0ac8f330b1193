"""Redis flow locks with real concurrent holders: one wins, renewals and releases respect the token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
import redis

from store.locks import RedisLock, hold_lock, lock_key, wanted, wanting
from voxflow.errors import LockError, ServiceError


@pytest.fixture
def client(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    redis_client.delete(lock_key("test-flow"), f"{lock_key('test-flow')}:wanted")
    yield redis_client
    redis_client.delete(lock_key("test-flow"), f"{lock_key('test-flow')}:wanted")


def test_of_two_concurrent_holders_exactly_one_gets_the_lock(client: redis.Redis) -> None:
    barrier = threading.Barrier(8)

    def contend(_: int) -> RedisLock | None:
        lock = RedisLock(redis.Redis(connection_pool=client.connection_pool), "test-flow", ttl_s=10)
        barrier.wait()
        return lock if lock.acquire() else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        winners = [lock for lock in pool.map(contend, range(8)) if lock is not None]
    assert len(winners) == 1
    assert client.get(lock_key("test-flow")) == winners[0].token
    assert winners[0].release() is True and client.get(lock_key("test-flow")) is None


def test_a_second_trigger_is_refused_with_the_holder_named(client: redis.Redis) -> None:
    with hold_lock(client, "test-flow", ttl_s=5) as held:
        with pytest.raises(LockError) as refused:
            with hold_lock(client, "test-flow", ttl_s=5):
                pytest.fail("a second holder entered")
        assert f"another test-flow run is in progress (lock voxflow:lock:test-flow held by {held.token})" in refused.value.reason
        assert client.get(lock_key("test-flow")) == held.token  # the refused one did not touch it
    assert client.get(lock_key("test-flow")) is None
    with hold_lock(client, "test-flow", ttl_s=5):
        pass


def test_a_holder_that_finishes_within_the_wait_is_waited_for(client: redis.Redis) -> None:
    held, finish = threading.Event(), threading.Event()

    def hold_until_finished() -> None:
        with hold_lock(client, "test-flow", ttl_s=5):
            held.set()
            finish.wait(10)

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(hold_until_finished)
        assert held.wait(5)
        with pytest.raises(LockError, match="another test-flow run is in progress"):
            with hold_lock(client, "test-flow", ttl_s=5, wait_s=0.1):
                pytest.fail("entered while the first holder still held it")
        # The first holder finishes 0.3 s into the wait: entering proves the wait outlasted it.
        started = time.monotonic()
        timer = threading.Timer(0.3, finish.set)
        timer.start()
        try:
            with hold_lock(client, "test-flow", ttl_s=5, wait_s=5) as second:
                assert finish.is_set(), "entered while the first holder still held it"
                assert client.get(lock_key("test-flow")) == second.token
                assert time.monotonic() - started < 2
        finally:
            timer.cancel()
            finish.set()
        first.result()


def test_a_lock_whose_holder_on_this_host_has_ended_is_taken_over_at_once(client: redis.Redis) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    client.set(lock_key("test-flow"), f"{socket.gethostname()}:{ended.pid}:crashed", px=60_000)
    with hold_lock(client, "test-flow", ttl_s=5) as held:
        assert client.get(lock_key("test-flow")) == held.token
    for alive in (f"{socket.gethostname()}:{os.getpid()}:running", f"another-host:{ended.pid}:crashed"):
        client.set(lock_key("test-flow"), alive, px=60_000)
        with pytest.raises(LockError, match=f"held by {alive}"):
            with hold_lock(client, "test-flow", ttl_s=5):
                pytest.fail("took a lock whose holder may live")
    client.delete(lock_key("test-flow"))


def test_an_expired_holder_cannot_renew_or_release_the_next_holders_lock(client: redis.Redis) -> None:
    first = RedisLock(client, "test-flow", ttl_s=0.2)
    assert first.acquire()
    time.sleep(0.3)
    second = RedisLock(client, "test-flow", ttl_s=10)
    assert second.acquire()
    assert first.renew() is False and first.release() is False
    assert client.get(lock_key("test-flow")) == second.token
    assert 9_000 < client.pttl(lock_key("test-flow")) <= 10_000
    assert second.renew() is True and second.release() is True


TTL_S = 2.0


def test_the_holder_renews_while_working_past_the_ttl(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    renewed_at: list[float] = []
    past_twice_the_ttl = threading.Event()
    renew = RedisLock.renew

    def timed_renew(self: RedisLock) -> bool:
        if renewed := renew(self):
            renewed_at.append(time.monotonic())
            if renewed_at[-1] - renewed_at[0] > 2 * TTL_S:
                past_twice_the_ttl.set()
        return renewed

    monkeypatch.setattr(RedisLock, "renew", timed_renew)
    with hold_lock(client, "test-flow", ttl_s=TTL_S) as held:
        # Working until a renewal finds the lock still ours more than twice the TTL after the first one
        # did: only the renewals in between can have kept it that long. A 1 s TTL (renewal every 0.33 s)
        # was lost on a loaded CI machine whose renewal thread went unscheduled for over 0.67 s.
        assert past_twice_the_ttl.wait(5 * TTL_S), f"{len(renewed_at)} renewals succeeded"
        assert client.get(lock_key("test-flow")) == held.token
        assert RedisLock(client, "test-flow", ttl_s=TTL_S).acquire() is False
    assert client.get(lock_key("test-flow")) is None


def test_a_crashed_holder_lock_expires(client: redis.Redis) -> None:
    crashed = RedisLock(client, "test-flow", ttl_s=1)
    assert crashed.acquire()  # never renewed nor released
    assert 0 < client.pttl(lock_key("test-flow")) <= 1_000  # Redis drops it within its TTL
    assert RedisLock(client, "test-flow", ttl_s=1).acquire() is False
    deadline = time.monotonic() + 10
    while client.exists(lock_key("test-flow")):
        assert time.monotonic() < deadline, "the crashed holder's lock did not expire"
        time.sleep(0.02)
    assert RedisLock(client, "test-flow", ttl_s=1).acquire() is True


def test_a_failed_release_does_not_hide_the_blocks_own_error(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreachable(self: RedisLock) -> bool:
        raise ServiceError("Redis unreachable (lock test-flow): connection refused")

    with pytest.raises(ValueError, match="the run's own error"):
        with hold_lock(client, "test-flow", ttl_s=5):
            monkeypatch.setattr(RedisLock, "release", unreachable)
            raise ValueError("the run's own error")
    assert "could not release lock voxflow:lock:test-flow" in caplog.text and "connection refused" in caplog.text
    with pytest.raises(ServiceError):  # after a block that succeeded, a failed release is the error to report
        with hold_lock(client, "test-flow-2", ttl_s=5):
            pass
    client.delete(lock_key("test-flow-2"))


def test_a_held_lock_lets_go_for_a_while_and_is_taken_back(client: redis.Redis) -> None:
    with hold_lock(client, "test-flow", ttl_s=5) as held:
        with held.let_go(wait_s=5):
            assert client.get(lock_key("test-flow")) is None
            with hold_lock(client, "test-flow", ttl_s=5) as other:  # someone else's turn meanwhile
                assert client.get(lock_key("test-flow")) == other.token
        assert client.get(lock_key("test-flow")) == held.token
        assert held.renew() is True
    assert client.get(lock_key("test-flow")) is None


def test_a_lock_taken_over_while_let_go_is_not_taken_back_nor_released(client: redis.Redis) -> None:
    other = RedisLock(client, "test-flow", ttl_s=30)
    with pytest.raises(LockError, match=r"^another test-flow run is in progress \(lock voxflow:lock:test-flow held by "):
        with hold_lock(client, "test-flow", ttl_s=5) as held:
            with held.let_go(wait_s=0.2):
                assert other.acquire()
            pytest.fail("took back a lock another holder keeps")
    assert client.get(lock_key("test-flow")) == other.token  # leaving hold_lock did not release the other's lock
    assert other.release()


def test_a_lock_is_wanted_while_a_live_asker_asks(client: redis.Redis) -> None:
    assert wanted(client, "test-flow") is False
    with wanting(client, "test-flow", ttl_s=0.6):
        with wanting(client, "test-flow", ttl_s=0.6):
            assert wanted(client, "test-flow") is True
        assert wanted(client, "test-flow") is True  # the other asker still asks
        time.sleep(1.5)  # past the TTL: renewed meanwhile
        assert wanted(client, "test-flow") is True
    assert wanted(client, "test-flow") is False
    # An asker that died (never renewed, never withdrew) stops counting once its request lapses.
    seconds, micros = client.time()
    client.zadd(f"{lock_key('test-flow')}:wanted", {"dead-host:1:x": int(seconds) * 1000 + int(micros) // 1000 + 300})
    assert wanted(client, "test-flow") is True
    time.sleep(0.5)
    assert wanted(client, "test-flow") is False
