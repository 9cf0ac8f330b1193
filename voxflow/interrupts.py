"""Ctrl-C held back while a command does what an interruption would leave half done."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """A first Ctrl-C (SIGINT) inside the block takes effect when the block ends; a second one at once.

    For steps of a second or so that a KeyboardInterrupt raised anywhere inside leaves in a worse state
    than their end: imports (a KeyboardInterrupt inside one can leave CPython's import lock held, and
    pydantic-core reports one raised in a callback of its as unraisable, and goes on), a scatter to Dask
    workers (it goes on without its caller). Only where this is the main thread, which Python's signal
    handlers run in; elsewhere the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # SIG_IGN or SIG_DFL: nothing to raise later
        return
    pressed: list[int] = []

    def defer_the_first(signum: int, frame: object) -> None:
        pressed.append(signum)
        if len(pressed) > 1:
            previous(signum, frame)

    signal.signal(signal.SIGINT, defer_the_first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if len(pressed) == 1:
            previous(signal.SIGINT, None)
