"""voxflow's own log lines in the Prefect run log, beside the flow's.

The flows log through Prefect's run logger; the modules they call log through loggers of their own (``store.mongo``,
``tasks.cluster``...), which Prefect sends only to the console. A run read in the Prefect UI (a deployment's, an API
trigger's) showed no MongoDB retry, Redis outage, lost lock or silent Dask scheduler. Nor did it show Dask's own
warnings (a worker killed and restarted, a task that failed on a worker): its scheduler, nannies and client log from
their event loop's thread, which holds no Prefect run context. Each flow calls :func:`send_to_run_log` first.
"""

from __future__ import annotations

import contextvars
import logging
import sys

from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler

from voxflow.settings import VOXFLOW_PACKAGES


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, quiet about records logged outside any Prefect run (a CLI command's set-up, a
    thread started without the run's context): those stay on the console only. Prefect's own warns at each, unless
    told to ignore them for every logger of the process (PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW)."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], MissingContextError):
            return
        super().handleError(record)


class _DaskRunLogHandler(RunLogHandler):
    """Sends a record to the log of the run this process runs, in that run's context (its flow run, and the Prefect
    settings that name its API), whichever thread logged it: Dask logs from its event loop's, which has neither.
    Outside that context, Prefect's handler would find no run, or send to the API of the process's environment."""

    def __init__(self, level: int) -> None:
        super().__init__(level=level)
        self.run_context: contextvars.Context | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.run_context is not None:
            self.run_context.copy().run(super().emit, record)  # a copy: two threads may log at once


_DASK_LOGGER = "distributed"


def send_to_run_log(level: str) -> None:
    """Send what voxflow's loggers log inside a Prefect run to that run's log too, from now on in this process.

    Parameters
    ----------
    level : str
        The level of a voxflow logger with none set yet (VOXFLOW_LOG_LEVEL). In a deployment's flow run process no
        one set them, and Prefect's default (WARNING) would drop the INFO lines; one set (the CLI's) is kept.
    """
    handler = RunLogHandler()
    for package in VOXFLOW_PACKAGES:
        logger = logging.getLogger(package)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
        if not any(isinstance(h, APILogHandler) for h in logger.handlers):  # once a process, or as PREFECT_LOGGING_EXTRA_LOGGERS set it
            logger.addHandler(handler)
    # Dask's warnings and errors (its INFO lines, one per client and worker, would bury the run's), in this run's
    # log: a process runs one flow run at a time (the CLI's, a deployment's), and its cluster is this run's.
    dask = logging.getLogger(_DASK_LOGGER)
    handlers = [h for h in dask.handlers if isinstance(h, APILogHandler)]
    if not handlers:
        handlers.append(_DaskRunLogHandler(level=max(logging.WARNING, logging.getLevelName(level))))
        dask.addHandler(handlers[0])
    if isinstance(handlers[0], _DaskRunLogHandler):  # not one PREFECT_LOGGING_EXTRA_LOGGERS set
        handlers[0].run_context = contextvars.copy_context()
