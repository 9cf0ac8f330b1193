import contextvars
import logging
import threading
from types import SimpleNamespace

import pytest

import tasks.progress
from tasks.progress import LatestOnly, Progress

_SETTING = contextvars.ContextVar("_SETTING", default="unset")


def test_line_reports_counts_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module's clock stands still 5 s after the start: the rate is exact, not read off a running clock.
    monkeypatch.setattr(tasks.progress, "time", SimpleNamespace(perf_counter=lambda: 105.0))
    progress = Progress(total=200, started=100.0)
    progress.advance(50)
    assert progress.line() == "50/200 files (25%) · 10.0 files/s · ETA 15 s"


def test_steps_are_reported_in_their_unit_at_the_first_and_the_last(caplog: pytest.LogCaptureFixture) -> None:
    step = tasks.progress.step_reporter("Cross-validating", 3, "folds")
    with caplog.at_level(logging.INFO, logger="tasks.progress"):
        for _ in range(3):
            step()
    said = [r.getMessage().split(" · ")[0] for r in caplog.records]
    assert said == ["Cross-validating: 1/3 folds (33%)", "Cross-validating: 3/3 folds (100%)"]  # the second came within 2 s of the first
    assert " folds/s · ETA " in caplog.records[0].getMessage()


def test_eta_unknown_before_anything_finishes() -> None:
    progress = Progress(total=100)
    assert progress.eta_s is None and progress.line().endswith("ETA ?")


def test_latest_only_never_waits_for_a_blocked_update_and_skips_what_it_outdated() -> None:
    started, release = threading.Event(), threading.Event()
    delivered: list[int] = []

    def blocked(value: int) -> None:
        started.set()
        assert release.wait(timeout=30), "the test never released the update"
        delivered.append(value)

    reporter = LatestOnly(blocked, what="a test artifact")
    reporter.post(1)
    assert started.wait(timeout=30), "the first value never reached the update"
    for value in (2, 3, 4):  # while the update of 1 hangs: each replaces the one before
        reporter.post(value)
    reporter.close(wait_s=0.1)  # returns though the update still hangs
    assert delivered == []
    release.set()
    reporter.close(wait_s=30)
    assert delivered == [1, 4]


def test_latest_only_update_failures_are_one_warning_and_never_the_callers(caplog: pytest.LogCaptureFixture) -> None:
    tried: list[int] = []

    def failing(value: int) -> None:
        tried.append(value)
        raise ConnectionError("[Errno 111] Connection refused")

    with caplog.at_level(logging.WARNING, logger="tasks.progress"):
        reporter = LatestOnly(failing, what="a test artifact")
        for value in range(3):
            reporter.post(value)
        reporter.close(wait_s=30)
    assert tried and tried[-1] == 2  # the last value posted is always tried
    assert [r.getMessage() for r in caplog.records] == [
        "Could not update a test artifact (ConnectionError: [Errno 111] Connection refused); the run goes on without it"
    ]


def test_latest_only_runs_updates_in_the_posters_context() -> None:
    # As Prefect's API URL and run context, which a thread of its own would not see.
    seen: list[str] = []
    token = _SETTING.set("the run's")
    try:
        reporter = LatestOnly(lambda _: seen.append(_SETTING.get()), what="a test artifact")
    finally:
        _SETTING.reset(token)
    reporter.post(1)
    reporter.close(wait_s=30)
    assert seen == ["the run's"]
