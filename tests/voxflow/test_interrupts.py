"""Stop signals held back for the length of a block."""

import signal
import threading

import pytest

from voxflow.interrupts import Terminated, raise_terminated, stops_deferred


def test_a_first_ctrl_c_takes_effect_when_the_block_ends() -> None:
    handler, reached = signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt):
        with stops_deferred():
            signal.raise_signal(signal.SIGINT)
            reached.append("the end of the block")
    assert reached == ["the end of the block"]
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_second_ctrl_c_takes_effect_at_once() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with stops_deferred():
            signal.raise_signal(signal.SIGINT)
            reached.append("after the first")
            signal.raise_signal(signal.SIGINT)
            reached.append("after the second")
    assert reached == ["after the first"]


def test_nested_blocks_defer_it_to_the_outer_ones_end() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with stops_deferred():
            with stops_deferred():
                signal.raise_signal(signal.SIGINT)
            reached.append("after the inner block")
    assert reached == ["after the inner block"]


def test_a_block_off_the_main_thread_runs_as_it_is() -> None:
    seen = []

    def block() -> None:
        with stops_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]  # no handler of its own: only the main thread may set one


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_is_deferred_as_ctrl_c_is(signum: signal.Signals) -> None:
    previous, reached = signal.signal(signum, raise_terminated), []
    try:
        with pytest.raises(Terminated) as stopped:
            with stops_deferred():
                signal.raise_signal(signum)
                reached.append("the end of the block")
        assert reached == ["the end of the block"] and stopped.value.signum == signum
        assert signal.getsignal(signum) is raise_terminated
    finally:
        signal.signal(signum, previous)


def test_a_signal_left_to_its_default_or_ignored_is_left_as_it_is() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stops_deferred():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            signal.raise_signal(signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
