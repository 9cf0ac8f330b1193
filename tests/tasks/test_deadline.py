import threading
import time
from types import SimpleNamespace
from typing import Callable

import pytest

import tasks.deadline
from tasks.deadline import FileTimeout, time_limit


class ManualTimer:
    """A ``threading.Timer`` that fires only when the test calls ``fire``, from a thread of its own as a real one does."""

    def __init__(self, interval: float, function: Callable[[], None]) -> None:
        self.interval, self.function = interval, function
        self.daemon = self.started = self.cancelled = False

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Run the function now, even once cancelled (a timer thread past its check when ``cancel`` came)."""
        thread = threading.Thread(target=self.function)
        thread.start()
        thread.join()


@pytest.fixture
def manual_timers(monkeypatch: pytest.MonkeyPatch) -> list[ManualTimer]:
    """The timers ``time_limit`` starts, as ManualTimers (other users of threading keep the real Timer)."""
    timers: list[ManualTimer] = []

    def make_timer(interval: float, function: Callable[[], None]) -> ManualTimer:
        timers.append(ManualTimer(interval, function))
        return timers[-1]

    monkeypatch.setattr(tasks.deadline, "threading", SimpleNamespace(**{**vars(threading), "Timer": make_timer}))
    return timers


def test_runaway_python_loop_is_interrupted() -> None:
    started = time.perf_counter()
    with pytest.raises(FileTimeout, match="stuck.wav: gave up after the 0.2 s per-file limit"):
        with time_limit(0.2, what="stuck.wav"):
            while True:
                pass
    assert time.perf_counter() - started < 2.0


def test_block_within_limit_is_untouched_and_nothing_fires_later(manual_timers: list[ManualTimer]) -> None:
    with time_limit(0.2, what="quick.wav"):
        total = sum(range(1000))
    [timer] = manual_timers
    assert timer.started and timer.interval == 0.2 and timer.cancelled
    timer.fire()  # the limit expiring as the block ended, in a timer thread that missed the cancel
    time.sleep(0.001)  # an interrupt left pending would surface here
    assert total == 499500


def test_a_library_that_swallows_the_interrupt_still_times_out(manual_timers: list[ManualTimer]) -> None:
    with pytest.raises(FileTimeout, match="greedy.wav"):
        with time_limit(0.1, what="greedy.wav"):
            [timer] = manual_timers
            assert timer.started and timer.interval == 0.1
            for step in range(5):  # a library's loop of short calls that swallows whatever interrupts one
                try:
                    if step == 2:
                        timer.fire()  # the limit expires during this call; the interrupt lands within it
                    time.sleep(0.001)
                except BaseException:  # noqa: BLE001 - what some libraries do
                    pass


def test_a_library_that_wraps_the_interrupt_still_times_out() -> None:
    with pytest.raises(FileTimeout, match="wrapped.wav"):
        with time_limit(0.1, what="wrapped.wav"):
            try:
                while True:
                    time.sleep(0.01)
            except BaseException as exc:
                raise RuntimeError("library error") from exc


def test_errors_within_the_limit_pass_through() -> None:
    with pytest.raises(ValueError, match="bad header"):
        with time_limit(5.0, what="bad.wav"):
            raise ValueError("bad header")


def test_a_limit_that_fires_while_the_timer_starts_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in CI under load with a 1 ms limit: the interrupt landed before the block was entered.
    start = threading.Timer.start

    def slow_start(timer: threading.Timer) -> None:
        start(timer)
        time.sleep(0.05)  # the limit expires here, while the context manager is still setting up

    monkeypatch.setattr(threading.Timer, "start", slow_start)
    with pytest.raises(FileTimeout, match="early.wav"):
        with time_limit(0.001, what="early.wav"):
            pass
