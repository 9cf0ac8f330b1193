"""One exception family, each carrying a human-readable reason."""

from __future__ import annotations

import logging


class VoxflowError(Exception):
    """Base of every error voxflow raises on purpose.

    Parameters
    ----------
    reason : str
        What went wrong, in words a user can act on. Stored verbatim in quarantine records.
    """

    stage = "unknown"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceError(VoxflowError):
    """The SOURCE given to a command cannot be read (missing, empty manifest, bad column)."""

    stage = "discover"


class TooFewLabels(SourceError):
    """The labelled data cannot be trained on yet: too few recordings, one class, or too few subjects per class."""


class DecodeError(VoxflowError):
    """An audio file could not be decoded into samples."""

    stage = "decode"


class QualityError(VoxflowError):
    """Decoded audio failed the quality gate (silence, too short, clipped, non-finite...)."""

    stage = "quality"


class FeatureError(VoxflowError):
    """Features could not be computed from otherwise valid audio."""

    stage = "features"


class ModelError(VoxflowError):
    """A model artifact is missing, corrupt or incompatible with the feature set."""

    stage = "model"


class ServiceError(VoxflowError):
    """An embedded or configured server (Redis, MongoDB, Prefect, Dask) is unavailable."""

    stage = "service"


class DatabaseError(ServiceError):
    """MongoDB is unreachable, or refused an operation (the configured user, a full disk)."""


class ClusterError(ServiceError):
    """The Dask cluster cannot run the run's tasks: voxflow missing on its scheduler or workers, no workers, a
    scheduler that does not answer, or one lost mid-run."""


class PrefectUnreachable(ServiceError):
    """The Prefect API stopped answering while a flow ran (Prefect's client gave up on it)."""


class BackupError(VoxflowError):
    """A backup cannot be written, verified or restored (missing or corrupt file, occupied target)."""

    stage = "backup"


class LockError(VoxflowError):
    """Another run holds the lock of a flow that must run alone (nightly backup, retrain)."""

    stage = "lock"


class OneLineInRunLogs(logging.Filter):
    """Leaves the traceback out of a flow or task run's log line about a :class:`VoxflowError` (Prefect logs three,
    ~40 lines each, for one bad source): its reason, in the line, is what to act on. Other exceptions keep theirs.

    Examples
    --------
    >>> record = logging.makeLogRecord({"msg": "failed", "exc_info": (SourceError, SourceError("empty"), None)})
    >>> OneLineInRunLogs().filter(record), record.exc_info
    (True, None)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], VoxflowError):
            record.exc_info, record.exc_text = None, None
        return True


# Here, where the errors are: a process that can log one has imported this module, a flow run that a worker
# started (which loads the flow's file, not the flows package) as the CLI. Loggers' filters outlive Prefect's
# logging setup, which replaces their handlers only.
for _run_logger in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_run_logger).addFilter(OneLineInRunLogs())
