"""One exception family, each carrying a human-readable reason."""

from __future__ import annotations


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
