"""The ``forget-recordings`` flow: forget recordings on demand through the Prefect API (a consent system that
withdraws a participant), as ``voxflow forget`` does from a shell."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows.run_log import send_to_run_log
from tasks.erasure import Named, erase, erasure_lines, named_recordings
from voxflow.errors import LockError
from voxflow.settings import Settings, get_settings


def _refused_for_now(task: Any, task_run: TaskRun, state: State) -> bool:
    """Try again only a refusal that time ends (runs running, a lock held), never an error in what was named."""
    return isinstance(state.data, LockError)


@task(name="forget", cache_policy=NO_CACHE, retry_condition_fn=_refused_for_now)
def forget_named(named: Named, settings: Settings, dry_run: bool) -> dict[str, Any]:
    """Forget ``named`` on every store (:func:`tasks.erasure.erase`)."""
    return erase(named, settings, dry_run=dry_run)


@flow(name="forget-recordings")
def forget_recordings(
    sha256: list[str] | None = None, paths: list[str] | None = None, subjects: list[str] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Remove what voxflow holds about these recordings from every store, and log what still holds them.

    A running drain pauses for it after its batch. A run refused while runs are running, a backup, restore, retrain
    or compaction holds its lock, or a drain does not pause in time tries again ``VOXFLOW_FORGET_RETRIES`` times,
    ``VOXFLOW_FORGET_RETRY_DELAY_S`` apart, then fails with the refusal: an erasure request is never dropped without a word.

    Parameters
    ----------
    sha256, paths, subjects : list of str
        Contents (audio_sha256), sources (files, folders, globs, manifests, or paths no longer on disk) and subject ids.
    dry_run : bool
        Report what would be removed; remove nothing.

    Returns
    -------
    dict
        ``voxflow forget --json``'s report.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    named = named_recordings(sha256 or (), paths or (), subjects or (), max_file_bytes=int(settings.max_file_mb * 1e6))
    report = forget_named.with_options(retries=settings.forget_retries, retry_delay_seconds=settings.forget_retry_delay_s)(named, settings, dry_run)
    logger = get_run_logger()
    for line in erasure_lines(report, settings.backup_location):
        logger.info(line)
    return report
