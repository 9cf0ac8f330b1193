"""Ctrl-C held back for the length of a block."""

import signal
import threading

import pytest

from voxflow.interrupts import ctrl_c_deferred


def test_a_first_ctrl_c_takes_effect_when_the_block_ends() -> None:
    handler, reached = signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            reached.append("the end of the block")
    assert reached == ["the end of the block"]
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_second_ctrl_c_takes_effect_at_once() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            reached.append("after the first")
            signal.raise_signal(signal.SIGINT)
            reached.append("after the second")
    assert reached == ["after the first"]


def test_nested_blocks_defer_it_to_the_outer_ones_end() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            with ctrl_c_deferred():
                signal.raise_signal(signal.SIGINT)
            reached.append("after the inner block")
    assert reached == ["after the inner block"]


def test_a_block_off_the_main_thread_runs_as_it_is() -> None:
    seen = []

    def block() -> None:
        with ctrl_c_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]  # no handler of its own: only the main thread may set one
