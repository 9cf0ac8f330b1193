"""Stop signals: Ctrl-C, SIGTERM and SIGHUP, and how a command holds them back for the length of a block."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any, Callable, Iterator

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


# How soon a stop signal whose exception Python would discard comes again (:func:`raise_where_it_counts`).
AGAIN_AFTER_S = 0.01


def raise_where_it_counts(raise_it: Callable[[int, Any], None], signum: int, frame: FrameType | None) -> None:
    """For a signal handler: ``raise_it(signum, frame)`` (what raises the stop's exception), unless Python would discard
    that exception where the main thread is; then the signal comes again in :data:`AGAIN_AFTER_S`, to the same test.

    Python prints and discards an exception raised while a garbage collection runs code (a gc callback, a weakref
    callback, a ``__del__``), while any ``__del__`` runs, or in an unraisable hook ("Exception ignored in ..."), and
    goes on: a Ctrl-C raised there (distributed's GCDiagnosis callback) was lost, and the run went on to the end.
    :func:`lost_stops_raised_again` catches the other places Python discards one.
    """
    if _discarded_in(frame):
        _come_again(signum)
    else:
        raise_it(signum, frame)


_collecting = False  # whether a garbage collection runs: its weakref callbacks and __del__s have their exceptions discarded


def _note_collection(phase: str, info: dict[str, int]) -> None:
    global _collecting
    _collecting = phase == "start"


gc.callbacks.insert(0, _note_collection)  # first: set before any other callback of a collection runs


def _discarded_in(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a garbage collection, or runs or was called from a gc callback, a ``__del__`` or
    :func:`_raise_lost_stop_again`."""
    if _collecting:
        return True
    discarding: set[CodeType] = {_raise_lost_stop_again.__code__}
    for callback in gc.callbacks:
        code = getattr(getattr(callback, "__func__", callback), "__code__", None)
        if code is not None:
            discarding.add(code)
    while frame is not None:
        if frame.f_code in discarding or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _come_again(signum: int) -> None:
    # Later, from a thread: one sent now is handled at the main thread's next instruction, still in there. A signal,
    # not a flag (_thread.interrupt_main): it wakes the main thread from a wait (a sleep, a lock, a socket).
    timer = threading.Timer(AGAIN_AFTER_S, signal.pthread_kill, args=(threading.main_thread().ident, signum))
    timer.daemon = True
    timer.start()


_hooks_before: list[Callable[[Any], object]] = []


def gc_diagnosis_race(unraisable: Any) -> bool:
    """Whether an unraisable error is distributed's GC diagnosis meeting a collection's end without its start.

    The Dask scheduler enables it from its own thread (``distributed.gc.enable_gc_diagnosis``); when this thread is
    collecting just then, the callback's "stop" comes without its "start" and asserts, and Python prints ``Exception
    ignored in: <bound method GCDiagnosis._gc_callback ...>`` with a traceback on the console of a command that is fine.
    A diagnostic's own race, of no use to a user.
    """
    return isinstance(unraisable.exc_value, AssertionError) and getattr(unraisable.object, "__qualname__", None) == "GCDiagnosis._gc_callback"


def _raise_lost_stop_again(unraisable: Any) -> None:
    """``sys.unraisablehook`` inside :func:`lost_stops_raised_again`; it drops :func:`gc_diagnosis_race`'s errors too."""
    if gc_diagnosis_race(unraisable):
        return
    stopped = stop_signal(unraisable.exc_value) if unraisable.exc_value is not None else None
    if stopped is None or threading.current_thread() is not threading.main_thread():
        _hooks_before[-1](unraisable)
    else:
        _come_again(stopped)


@contextmanager
def lost_stops_raised_again() -> Iterator[None]:
    """Inside the block, a stop signal's exception that Python discarded anyway (a weakref callback's, one a native
    library reports as unraisable) is raised again: its signal comes again (:func:`raise_where_it_counts`), unsaid.
    The race of distributed's GC diagnosis (:func:`gc_diagnosis_race`) is not printed."""
    _hooks_before.append(sys.unraisablehook)
    sys.unraisablehook = _raise_lost_stop_again
    try:
        yield
    finally:
        sys.unraisablehook = _hooks_before.pop()


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


_completed_runs: list[str] = []  # the runs this process recorded completed, oldest first


def record_completed(finish: Callable[[], object], run_id: str) -> None:
    """Call ``finish``, which records run ``run_id`` completed, whole (a stop signal inside it takes effect at its end),
    and note the run as completed: a stop that ends the command after that leaves nothing of it to re-run."""
    with stops_deferred():
        finish()
        _completed_runs.append(run_id)


def completed_runs() -> list[str]:
    """The ids of the runs this process recorded completed (:func:`record_completed`), oldest first."""
    return list(_completed_runs)
