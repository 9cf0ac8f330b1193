import threading
import time

import pytest

from tasks.deadline import FileTimeout, time_limit


def test_runaway_python_loop_is_interrupted() -> None:
    started = time.perf_counter()
    with pytest.raises(FileTimeout, match="stuck.wav: gave up after the 0.2 s per-file limit"):
        with time_limit(0.2, what="stuck.wav"):
            while True:
                pass
    assert time.perf_counter() - started < 2.0


def test_block_within_limit_is_untouched_and_nothing_fires_later() -> None:
    with time_limit(0.2, what="quick.wav"):
        total = sum(range(1000))
    time.sleep(0.4)  # an interrupt left pending would surface here
    assert total == 499500


def test_a_library_that_swallows_the_interrupt_still_times_out() -> None:
    with pytest.raises(FileTimeout, match="greedy.wav"):
        with time_limit(0.1, what="greedy.wav"):
            deadline = time.perf_counter() + 0.5
            while time.perf_counter() < deadline:
                try:
                    time.sleep(0.01)
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
