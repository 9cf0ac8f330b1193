"""How voxflow's errors show in Prefect's run logs."""

from __future__ import annotations

import logging

import pytest
from prefect.logging.configuration import setup_logging

from voxflow.errors import SourceError


class Kept(logging.Handler):
    """The records a logger passes on, formatted as a plain handler would."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("logger_name", ["prefect.flow_runs", "prefect.task_runs"])
def test_a_run_log_line_about_a_voxflow_error_has_no_traceback_and_any_other_keeps_its(logger_name: str) -> None:
    setup_logging(incremental=False)  # as a flow run's process sets it up, after voxflow's modules were imported
    logger = logging.getLogger(logger_name)
    kept = Kept()
    logger.addHandler(kept)
    try:
        for error in (SourceError("source not found: /data/nope"), ValueError("a bug")):
            try:
                raise error
            except Exception:
                logger.exception("Encountered exception during execution: %r", error, extra={"flow_run_name": "f", "task_run_name": "t"})
    finally:
        logger.removeHandler(kept)
    voxflow_line, bug_line = kept.lines
    assert voxflow_line == "Encountered exception during execution: SourceError('source not found: /data/nope')"
    assert bug_line.startswith("Encountered exception during execution: ValueError('a bug')\nTraceback")
