"""Redis locks that let one run of a flow (nightly backup, retrain) run at a time.

The lock is the key ``voxflow:lock:{name}`` holding the holder's token, set with ``SET NX PX`` so that a
crashed holder's lock expires. Renewing and releasing compare the token first (one Lua script each), so a
holder whose lock expired and was taken over never extends or deletes the new holder's lock.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import redis

from store.cache import redis_errors_as_service_error
from voxflow.errors import LockError, ServiceError
from voxflow.processes import ended_on_this_host

log = logging.getLogger(__name__)
T = TypeVar("T")
_WAIT_STEP_S = 0.05

# Besides the runs that analyse, these write the stores; none may run while recordings are forgotten.
BACKUP_LOCK = "backup"  # a backup or a restore
DRAIN_LOCK = "drain"
RETRAIN_LOCK = "retrain"
FEATURE_STORE_LOCK = "feature-store"  # rewriting or merging the feature store's files: a merge would keep erased rows

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def lock_key(name: str) -> str:
    """The Redis key of the lock ``name``.

    Examples
    --------
    >>> lock_key("backup")
    'voxflow:lock:backup'
    """
    return f"voxflow:lock:{name}"


class RedisLock:
    """A lock in Redis, owned by whoever holds its token.

    Parameters
    ----------
    client : redis.Redis
        Any Redis client (replies decoded or not).
    name : str
        The flow it guards, e.g. ``"backup"``.
    ttl_s : float
        How long the lock outlives a holder that stops renewing it (a crash).
    """

    def __init__(self, client: redis.Redis, name: str, *, ttl_s: float) -> None:
        self.key = lock_key(name)
        self.name = name
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._client = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when taken."""
        return bool(self._redis(lambda: self._client.set(self.key, self.token, nx=True, px=self._ttl_ms)))

    def renew(self) -> bool:
        """Extend the lock by its TTL; False when it is no longer ours (expired, taken over)."""
        return bool(self._redis(lambda: self._renew(keys=[self.key], args=[self.token, self._ttl_ms])))

    def release(self) -> bool:
        """Delete the lock if it is still ours; False when it was not."""
        return bool(self._redis(lambda: self._release(keys=[self.key], args=[self.token])))

    def free_if_holder_died(self) -> bool:
        """Delete the lock when its holder is a process of this host that has ended (it can neither renew
        nor release it, and would block every other holder until the TTL ran out); True when deleted.

        A holder on another host, or whose pid runs (maybe reused), is left to its TTL.
        """
        holder = self.holder()
        host, pid, _ = (holder or "::").rsplit(":", 2)
        return ended_on_this_host(host, pid) and bool(self._redis(lambda: self._release(keys=[self.key], args=[holder])))

    def holder(self) -> str | None:
        """The token of the current holder (``host:pid:random``), or None when the lock is free."""
        value = self._redis(lambda: self._client.get(self.key))
        return value.decode() if isinstance(value, bytes) else value

    def _redis(self, operation: Callable[[], T]) -> T:
        with redis_errors_as_service_error(f"lock {self.name}"):
            return operation()


class HeldLock(RedisLock):
    """A :class:`RedisLock` held by :func:`hold_lock`: renewed every third of its TTL in a thread while held, and able to
    let go of it for a while (:meth:`let_go`)."""

    def __init__(self, client: redis.Redis, name: str, *, ttl_s: float) -> None:
        super().__init__(client, name, ttl_s=ttl_s)
        self._ttl_s = ttl_s
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def hold(self, *, wait_s: float) -> None:
        """Take the lock, waiting up to ``wait_s`` for another holder to finish, and renew it from now on.

        Raises
        ------
        LockError
            When another run holds the lock still; the message names the holder.
        """
        deadline = time.monotonic() + wait_s
        while not self.acquire():
            if self.free_if_holder_died():
                log.warning("lock %s was held by a process of this host that has ended; taken over", self.key)
                continue
            if time.monotonic() >= deadline:
                raise LockError(f"another {self.name} run is in progress (lock {self.key} held by {self.holder() or 'a holder that just left'})")
            time.sleep(_WAIT_STEP_S)
        self._stop = threading.Event()
        # In the holder's context: a lost lock is logged in the Prefect run's log too (flows/run_log.py).
        self._renewer = threading.Thread(target=contextvars.copy_context().run, args=(self._keep_alive, self._stop), name=f"voxflow-lock-{self.name}", daemon=True)
        self._renewer.start()

    def stop_holding(self, *, body_failed: bool) -> None:
        """Stop renewing the lock and release it (nothing when not held). After a failed block, a release that
        Redis refuses is logged, not raised: the block's own error says what went wrong, and the lock expires."""
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        self._renewer = None
        try:
            released = self.release()
        except ServiceError as exc:
            if not body_failed:
                raise
            log.error("could not release lock %s after the run failed (it expires on its own): %s", self.key, exc.reason)
            return
        if not released:
            log.warning("lock %s was no longer ours at release (it expired and may be held by another run)", self.key)

    @contextmanager
    def let_go(self, *, wait_s: float) -> Iterator[None]:
        """Release the lock for the enclosed block, then take it back, waiting up to ``wait_s`` for a holder that
        took it meanwhile to finish.

        Raises
        ------
        LockError
            When another holder keeps the lock past ``wait_s``; this one holds it no more.
        """
        self.stop_holding(body_failed=False)
        yield
        self.hold(wait_s=wait_s)

    def _keep_alive(self, stop: threading.Event) -> None:
        while not stop.wait(self._ttl_s / 3):
            try:
                if not self.renew():
                    log.error("lost lock %s: it expired before it could be renewed", self.key)
                    return
            except ServiceError as exc:
                log.warning("could not renew lock %s: %s", self.key, exc.reason)


@contextmanager
def hold_lock(client: redis.Redis, name: str, *, ttl_s: float, wait_s: float = 0.0) -> Iterator[HeldLock]:
    """Hold the lock ``name`` for the enclosed block, renewing it every ``ttl_s / 3`` in a thread.

    ``wait_s`` is how long to wait for another holder to finish (for short blocks); by default none.

    Raises
    ------
    LockError
        When another run holds the lock (still, after ``wait_s``); the message names the holder.
    """
    lock = HeldLock(client, name, ttl_s=ttl_s)
    lock.hold(wait_s=wait_s)
    try:
        yield lock
    except BaseException:
        lock.stop_holding(body_failed=True)
        raise
    lock.stop_holding(body_failed=False)


def _wanted_key(name: str) -> str:
    return f"{lock_key(name)}:wanted"


@contextmanager
def wanting(client: redis.Redis, name: str, *, ttl_s: float) -> Iterator[None]:
    """Ask whoever holds the lock ``name`` to let go of it at its next safe point, for the enclosed block.

    Each asker is a member of a sorted set scored by when its request lapses, renewed every third of
    ``ttl_s`` in a thread: an asker that dies stops asking within ``ttl_s``. Holders that can pause ask
    :func:`wanted` between steps.
    """
    key, asker = _wanted_key(name), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    ttl_ms = max(1, int(ttl_s * 1000))

    def ask() -> None:
        lapses = _now_ms(client) + ttl_ms
        with client.pipeline() as pipe:
            pipe.zremrangebyscore(key, "-inf", f"({lapses - ttl_ms}")  # askers that died
            pipe.zadd(key, {asker: lapses})
            pipe.pexpire(key, ttl_ms)
            pipe.execute()

    with redis_errors_as_service_error(f"lock {name}"):
        ask()
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                ask()
            except redis.RedisError as exc:
                log.warning("could not renew the request for lock %s: %s", lock_key(name), exc)

    asking = threading.Thread(target=keep_asking, name=f"voxflow-wanting-{name}", daemon=True)
    asking.start()
    try:
        yield
    finally:
        stop.set()
        asking.join()
        try:
            client.zrem(key, asker)
        except redis.RedisError as exc:  # the request lapses on its own
            log.warning("could not withdraw the request for lock %s (it lapses within %.0f s): %s", lock_key(name), ttl_s, exc)


def wanted(client: redis.Redis, name: str) -> bool:
    """Whether a live asker (:func:`wanting`) wants the lock ``name``."""
    with redis_errors_as_service_error(f"lock {name}"):
        return client.zcount(_wanted_key(name), f"({_now_ms(client)}", "+inf") > 0


def _now_ms(client: redis.Redis) -> int:
    # The server's clock, so that askers and holders on hosts whose clocks differ agree on what has lapsed.
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
