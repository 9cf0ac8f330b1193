"""Progress of a long run: files done of total, rate and ETA, as one readable line; reported off the run's thread."""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

REPORT_EVERY_S = 2.0  # a progress line at most this often, but for the last


@dataclass
class Progress:
    """Counts files as chunks complete and reports rate and time left."""

    total: int
    unit: str = "files"
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    reported: float = -math.inf

    def advance(self, files: int) -> None:
        self.done += files

    def due(self, every_s: float = REPORT_EVERY_S) -> bool:
        """Whether to report now: ``every_s`` after the last report, at the first call and once every file is done.

        Examples
        --------
        >>> progress = Progress(total=10)
        >>> progress.advance(4)
        >>> progress.due(), progress.due()
        (True, False)
        >>> progress.advance(6)
        >>> progress.due()
        True
        """
        now = time.perf_counter()
        if now - self.reported < every_s and self.done < self.total:
            return False
        self.reported = now
        return True

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Files per second since the start."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def line(self) -> str:
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f} s"
        return f"{self.done}/{self.total} {self.unit} ({self.percent:.0f}%) · {self.rate:.1f} {self.unit}/s · ETA {eta}"


def step_reporter(what: str, total: int, unit: str) -> Callable[[], None]:
    """A callback to call once per step done, of ``total``: it logs ``what: <progress line>`` at most every 2 s, and at the last.

    Examples
    --------
    >>> step = step_reporter("Cross-validating", 25, "folds")
    >>> step()  # logs "Cross-validating: 1/25 folds (4%) · … folds/s · ETA … s"
    """
    progress = Progress(total=total, unit=unit)

    def step() -> None:
        progress.advance(1)
        if progress.due():
            log.info("%s: %s", what, progress.line())

    return step


class LatestOnly(Generic[T]):
    """Hands the newest value posted to ``update``, on a thread of its own: a slow or failing ``update`` never holds
    up or fails the poster (a run's progress sent to an API that may be down).

    One call runs at a time, and a value posted meanwhile replaces any still waiting: nothing queues up. The first
    failed call logs one warning naming ``what``; later failures are quiet. The thread runs in the poster's context
    (contextvars) as of construction, so the settings in force there apply (Prefect's API URL and run context).
    Used as a context manager, it is closed at the block's end.
    """

    def __init__(self, update: Callable[[T], object], *, what: str) -> None:
        self._update = update
        self._what = what
        self._waiting: list[T] = []  # at most one value
        self._changed = threading.Condition()
        self._closed = False
        self._warned = False
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._deliver,), name=f"latest-only {what}", daemon=True)
        self._thread.start()

    def post(self, value: T) -> None:
        """Have ``value`` delivered next, instead of any value still waiting; returns at once."""
        with self._changed:
            self._waiting[:] = [value]
            self._changed.notify()

    def close(self, *, wait_s: float = 5.0) -> None:
        """Take no more values; wait up to ``wait_s`` for the one waiting, if any, to be delivered.

        A call still running after that is left to its daemon thread, which ends with it.
        """
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(wait_s)

    def __enter__(self) -> LatestOnly[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self) -> list[T]:
        """The value to deliver next, or none once closed with nothing waiting."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            taken = list(self._waiting)
            self._waiting.clear()
            return taken

    def _deliver(self) -> None:
        while taken := self._next():
            try:
                self._update(taken[0])
            except Exception as exc:  # whatever the API's client raised: the run goes on without this report
                if not self._warned:
                    log.warning("Could not update %s (%s: %s); the run goes on without it", self._what, type(exc).__name__, exc)
                self._warned = True
