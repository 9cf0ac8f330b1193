from types import SimpleNamespace

import pytest

import tasks.progress
from tasks.progress import Progress


def test_line_reports_counts_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module's clock stands still 5 s after the start: the rate is exact, not read off a running clock.
    monkeypatch.setattr(tasks.progress, "time", SimpleNamespace(perf_counter=lambda: 105.0))
    progress = Progress(total=200, started=100.0)
    progress.advance(50)
    assert progress.line() == "50/200 files (25%) · 10.0 files/s · ETA 15 s"


def test_eta_unknown_before_anything_finishes() -> None:
    progress = Progress(total=100)
    assert progress.eta_s is None and progress.line().endswith("ETA ?")
