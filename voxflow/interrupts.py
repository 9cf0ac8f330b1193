"""Stop signals: Ctrl-C, SIGTERM and SIGHUP, and how a command holds them back for the length of a block."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

# Ctrl-C; a service manager, `kill PID` or Prefect cancelling a run; the terminal closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A terminal's own, sent to every process of its job: the command's to handle, not its helper processes'.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGHUP)


class Terminated(BaseException):
    """The command was asked to stop by SIGTERM or SIGHUP (a BaseException, as KeyboardInterrupt is for Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        self.signum = signal.Signals(signum)
        super().__init__(self.signum.name)

    def __reduce__(self) -> tuple[type[Terminated], tuple[int]]:
        return Terminated, (int(self.signum),)  # as it was made: its args hold the name


def raise_terminated(signum: int, frame: object) -> None:
    """A signal handler: raise :class:`Terminated` in the main thread."""
    raise Terminated(signum)


def stop_signal(exc: BaseException) -> signal.Signals | None:
    """The stop signal ``exc`` is how a command met, if any: Ctrl-C, or SIGTERM/SIGHUP, raised by our handler or,
    inside a flow run, by Prefect's (its TerminationSignal).

    Examples
    --------
    >>> stop_signal(Terminated(signal.SIGHUP)).name, stop_signal(KeyboardInterrupt()).name, stop_signal(ValueError())
    ('SIGHUP', 'SIGINT', None)
    """
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(exc, Terminated):
        return exc.signum
    prefect_exceptions = sys.modules.get("prefect.exceptions")  # not loaded: no flow ran, nothing of Prefect's raised it
    if prefect_exceptions is not None and isinstance(exc, prefect_exceptions.TerminationSignal):
        return signal.Signals(exc.signal)
    return None


@contextmanager
def stops_deferred() -> Iterator[None]:
    """A first stop signal (Ctrl-C, SIGTERM, SIGHUP) inside the block takes effect when the block ends; a second one at once.

    For steps of a second or so that an exception raised anywhere inside leaves in a worse state than their
    end: imports (a KeyboardInterrupt inside one can leave CPython's import lock held, and pydantic-core
    reports one raised in a callback of its as unraisable, and goes on), a scatter to Dask workers (it goes
    on without its caller). Only where this is the main thread, which Python's signal handlers run in;
    elsewhere the block runs as it is. A signal whose handler is not Python code (ignored, as nohup leaves
    SIGHUP, or the default) is left as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[[int, object], object]] = {
        signum: handler for signum in STOP_SIGNALS if callable(handler := signal.getsignal(signum))
    }
    pressed: list[int] = []

    def defer_the_first(signum: int, frame: object) -> None:
        pressed.append(signum)
        if len(pressed) > 1:
            previous[signum](signum, frame)

    for signum in previous:
        signal.signal(signum, defer_the_first)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if len(pressed) == 1:
            previous[pressed[0]](pressed[0], None)
