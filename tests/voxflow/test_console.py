"""The console log handler of the flow runs that ``voxflow worker`` starts."""

from __future__ import annotations

import io
import logging

import pytest
from prefect.logging.configuration import setup_logging
from prefect.logging.handlers import PrefectConsoleHandler

from voxflow.console import CONSOLE_CLASS_VARIABLE, PLAIN_CONSOLE_CLASS, PlainConsoleHandler

LINE = "Retrain refused: another retrain run is in progress (lock voxflow:lock:retrain held by host:42:ab)"


def _printed(handler_class: type[PrefectConsoleHandler]) -> str:
    stream = io.StringIO()
    handler = handler_class(stream=stream)
    handler.emit(logging.makeLogRecord({"msg": LINE, "levelno": logging.WARNING}))
    return stream.getvalue()


def test_a_lock_name_prints_as_written_where_prefects_console_made_it_an_emoji() -> None:
    assert "voxflow\N{LOCK}retrain" in _printed(PrefectConsoleHandler)  # rich's :lock:
    assert _printed(PlainConsoleHandler) == LINE + "\n"


def test_the_variable_a_worker_hands_its_flow_runs_gives_their_logging_this_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONSOLE_CLASS_VARIABLE, PLAIN_CONSOLE_CLASS)
    try:
        setup_logging(incremental=False)  # as a flow run's process sets it up
        assert [type(h) for h in logging.getLogger().handlers] == [PlainConsoleHandler]
    finally:
        monkeypatch.delenv(CONSOLE_CLASS_VARIABLE)
        setup_logging(incremental=False)
