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


@contextmanager
def hold_lock(client: redis.Redis, name: str, *, ttl_s: float, wait_s: float = 0.0) -> Iterator[RedisLock]:
    """Hold the lock ``name`` for the enclosed block, renewing it every ``ttl_s / 3`` in a thread.

    ``wait_s`` is how long to wait for another holder to finish (for short blocks); by default none.

    Raises
    ------
    LockError
        When another run holds the lock (still, after ``wait_s``); the message names the holder.
    """
    lock = RedisLock(client, name, ttl_s=ttl_s)
    deadline = time.monotonic() + wait_s
    while not lock.acquire():
        if lock.free_if_holder_died():
            log.warning("lock %s was held by a process of this host that has ended; taken over", lock.key)
            continue
        if time.monotonic() >= deadline:
            raise LockError(f"another {name} run is in progress (lock {lock.key} held by {lock.holder() or 'a holder that just left'})")
        time.sleep(_WAIT_STEP_S)
    stop = threading.Event()

    def keep_alive() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                if not lock.renew():
                    log.error("lost lock %s: it expired before it could be renewed", lock.key)
                    return
            except ServiceError as exc:
                log.warning("could not renew lock %s: %s", lock.key, exc.reason)

    # In the holder's context: a lost lock is logged in the Prefect run's log too (flows/run_log.py).
    renewer = threading.Thread(target=contextvars.copy_context().run, args=(keep_alive,), name=f"voxflow-lock-{name}", daemon=True)
    renewer.start()
    try:
        yield lock
    except BaseException:
        _stop_and_release(lock, stop, renewer, body_failed=True)
        raise
    _stop_and_release(lock, stop, renewer, body_failed=False)


def _stop_and_release(lock: RedisLock, stop: threading.Event, renewer: threading.Thread, *, body_failed: bool) -> None:
    stop.set()
    renewer.join()
    try:
        released = lock.release()
    except ServiceError as exc:
        if not body_failed:
            raise
        # The block's own exception says what went wrong; the lock expires on its own after its TTL.
        log.error("could not release lock %s after the run failed (it expires on its own): %s", lock.key, exc.reason)
        return
    if not released:
        log.warning("lock %s was no longer ours at release (it expired and may be held by another run)", lock.key)
