"""A per-file time limit for code running in a Dask worker thread (where SIGALRM cannot be used)."""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager
from typing import Iterator

from voxflow.errors import VoxflowError


class FileTimeout(VoxflowError):
    """Processing one file took longer than the per-file limit."""

    stage = "timeout"


class _Expired(BaseException):
    """Raised asynchronously inside the worker thread; BaseException so broad handlers don't swallow it."""


@contextmanager
def time_limit(seconds: float, *, what: str) -> Iterator[None]:
    """Interrupt the calling thread when the block runs longer than ``seconds``.

    The interrupt lands at the next Python bytecode, so a single long native call (one numba or
    XGBoost call on a clip already capped by ``max_duration_s``) finishes first; nothing can stall
    forever. A block that outlives the limit fails even when a library swallowed or wrapped the
    interrupt, or finished just as it fired.

    Raises
    ------
    FileTimeout
        When the limit expired inside the block.
    """
    target = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"done": False, "fired": False}
    message = f"{what}: gave up after the {seconds:g} s per-file limit"

    def expire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_Expired))

    def stop() -> bool:
        """End the watch; True when the limit expired (an interrupt still pending is dropped)."""
        with lock:
            state["done"] = True
            if state["fired"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
        timer.cancel()
        return state["fired"]

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    try:
        try:
            timer.start()  # inside: a very short limit can fire while the timer thread is still starting
            yield
        except (_Expired, Exception):
            if stop():
                raise FileTimeout(message) from None
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit: never turned into a timeout
            stop()
            raise
        if stop():
            raise FileTimeout(message)
    except _Expired:
        # Delivered after the block, before stop() held its lock (in a handler above, or on the way to
        # stop()). The timer fires once, so nothing else can land here.
        stop()
        raise FileTimeout(message) from None
