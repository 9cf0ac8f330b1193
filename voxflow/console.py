"""The console log handler of the flow runs that ``voxflow worker`` starts: Prefect's, printing text as written."""

from __future__ import annotations

import logging

from prefect.logging.handlers import PrefectConsoleHandler

# Prefect's logging setup reads this variable (its logging.yml's handlers.console.class), in every flow run a
# worker started with it in its environment.
CONSOLE_CLASS_VARIABLE = "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"
PLAIN_CONSOLE_CLASS = "voxflow.console.PlainConsoleHandler"


class PlainConsoleHandler(PrefectConsoleHandler):
    """Prefect's console handler without rich's emoji codes: it printed the lock ``voxflow:lock:retrain`` as
    ``voxflow🔒retrain`` (``:lock:``), and would any ``:name:`` in a path or a reason. Prefect has no setting for it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), soft_wrap=True, emoji=False)
        except RecursionError:  # as logging.StreamHandler.emit
            raise
        except Exception:
            self.handleError(record)

