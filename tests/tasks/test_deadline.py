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
