"""How voxflow's Dask workers log: distributed's lost-heartbeat error in one line, not with the traceback of its comm stack."""

from __future__ import annotations

import logging

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat"


class OneLineHeartbeatFailure(logging.Filter):
    """distributed's worker logs ``Failed to communicate with scheduler during heartbeat.`` with the ~30-line traceback of
    its comm stack. The scheduler went away: a run ending while a worker's heartbeat was in flight (its console then
    ended in a traceback under the run's own one-line stop), or a scheduler lost, which the run reports itself. The
    line keeps the error's own message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and str(record.msg).startswith(HEARTBEAT_FAILED):
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} ({type(error).__name__}: {error})", ()
            record.exc_info, record.exc_text = None, None
        return True


def lost_heartbeats_in_one_line() -> None:
    """Install :class:`OneLineHeartbeatFailure` on distributed's worker logger, once per process."""
    worker_log = logging.getLogger("distributed.worker")
    if not any(isinstance(existing, OneLineHeartbeatFailure) for existing in worker_log.filters):
        worker_log.addFilter(OneLineHeartbeatFailure())
