import time

from tasks.progress import Progress


def test_line_reports_counts_rate_and_eta() -> None:
    progress = Progress(total=200, started=time.perf_counter() - 5.0)
    progress.advance(50)
    line = progress.line()
    assert line.startswith("50/200 files (25%) · 10.0 files/s · ETA 15 s")


def test_eta_unknown_before_anything_finishes() -> None:
    progress = Progress(total=100)
    assert progress.eta_s is None and progress.line().endswith("ETA ?")
