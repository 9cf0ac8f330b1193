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
