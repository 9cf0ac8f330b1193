"""Stop signals held back for the length of a block."""

import gc
import pickle
import signal
import sys
import threading
import time
import types
import weakref

import pytest

from voxflow.interrupts import Terminated, lost_stops_raised_again, raise_terminated, raise_where_it_counts, stops_deferred


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


@pytest.mark.parametrize("disposition", [signal.SIG_IGN, signal.SIG_DFL], ids=["ignored, as under nohup", "default"])
def test_a_signal_whose_handler_is_no_python_code_is_left_as_it_is(disposition: signal.Handlers) -> None:
    previous = signal.signal(signal.SIGHUP, disposition)
    try:
        with stops_deferred():
            assert signal.getsignal(signal.SIGHUP) is disposition
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_termination_survives_pickling() -> None:
    # as an exception a Dask worker or a subprocess hands back does
    assert pickle.loads(pickle.dumps(Terminated(signal.SIGHUP))).signum == signal.SIGHUP


def _ctrl_c_where_it_counts(signum: int, frame: object) -> None:
    raise_where_it_counts(signal.default_int_handler, signum, frame)


class _CtrlCWhenCollected:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def _ctrl_c_in_a_gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        signal.raise_signal(signal.SIGINT)


def _collected_with_a_ctrl_c() -> None:
    gc.callbacks.append(_ctrl_c_in_a_gc_callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(_ctrl_c_in_a_gc_callback)


class _Cycle:
    pass


def _ctrl_c_in_a_weakref_callback_of_a_collection() -> None:
    cycle = _Cycle()
    cycle.me = cycle  # type: ignore[attr-defined]
    watched = weakref.ref(cycle, lambda _: signal.raise_signal(signal.SIGINT))
    del cycle
    gc.collect()
    assert watched() is None


@pytest.mark.parametrize(
    "ctrl_c", [_collected_with_a_ctrl_c, _CtrlCWhenCollected, _ctrl_c_in_a_weakref_callback_of_a_collection],
    ids=["in a gc callback", "in a __del__", "in a weakref callback of a collection"],
)
def test_a_ctrl_c_that_python_would_discard_comes_again_where_it_is_kept(ctrl_c: object) -> None:
    # Raised there, Python prints "Exception ignored in ..." and goes on: the Ctrl-C was lost.
    previous, waited = signal.signal(signal.SIGINT, _ctrl_c_where_it_counts), []
    try:
        with pytest.raises(KeyboardInterrupt):
            ctrl_c()  # type: ignore[operator]
            for _ in range(300):
                time.sleep(0.01)
                waited.append(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(waited) < 30  # it came again ~10 ms later


def test_the_race_of_distributeds_gc_diagnosis_is_not_printed_and_any_other_unraisable_error_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # A collection of this thread ending while the Dask scheduler's thread enables the diagnosis: its "stop" without a
    # "start" (seen once in CI at a drain's cluster start, "Exception ignored in: <bound method GCDiagnosis._gc_callback").
    from distributed.gc import FractionalTimer, GCDiagnosis

    diagnosis, printed = GCDiagnosis(), []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)  # the hook before voxflow's: Python's prints "Exception ignored in"
    with lost_stops_raised_again():
        try:
            FractionalTimer(n_samples=1).stop_timing()  # what its callback's "stop" runs; the interpreter hands the error to the hook
        except AssertionError as exc:
            sys.unraisablehook(types.SimpleNamespace(exc_type=AssertionError, exc_value=exc, exc_traceback=exc.__traceback__, err_msg=None, object=diagnosis._gc_callback))
        try:
            raise ValueError("someone else's")
        except ValueError as exc:
            sys.unraisablehook(types.SimpleNamespace(exc_type=ValueError, exc_value=exc, exc_traceback=exc.__traceback__, err_msg=None, object=print))
    assert [str(unraisable.exc_value) for unraisable in printed] == ["someone else's"]
