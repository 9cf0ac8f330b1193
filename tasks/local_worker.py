"""Dask worker preload for voxflow's local clusters: a terminal's Ctrl-C or hang-up is the command's to handle, not its workers'.

A terminal's Ctrl-C (and its SIGHUP when it closes) reaches every process in its process group, and the workers a command forks or
spawns are among them: each printed a KeyboardInterrupt traceback while the command was closing them
anyway. Workers forked from a forkserver the main thread started ignore SIGINT from their start
(:func:`tasks.forkserver.start_forkserver`); spawned ones, and forked ones whose forkserver another
thread started, from when this loads. Only local workers load this; an operator's own ``dask worker``
keeps its Ctrl-C. SIGTERM is left as it is: a nanny stops a worker that does not close in time with it.

From then on a worker notes a Ctrl-C, and goes on: the command closes the cluster with chunks still
running, and a worker closing cancels each one with a warning on the terminal, two lines above the
command's own ("Async instruction for <Task cancelled name="execute('score-chunk-...')" ...> ended with
CancelledError": 9 of 10 Ctrl-Cs 3-7 s into a run, chunks of 48 files). After a Ctrl-C those warnings are
left out; any other time (a worker closed with a chunk running for another reason) they show.
"""

import logging
import signal

from voxflow.interrupts import TERMINAL_SIGNALS

# distributed.worker_state_machine's logger and the start and end of its warning (a worker closing, BaseWorker.close,
# cancels the asyncio task of each instruction still running: a chunk's execution, a fetch of its inputs).
STATE_MACHINE_LOGGER = "distributed.worker.state_machine"
CANCELLED_WARNING = ("Async instruction for ", " ended with CancelledError")

stop_noted = False


def _note_stop(signum: int, frame: object) -> None:
    global stop_noted
    stop_noted = True


class CancelledAfterStop(logging.Filter):
    """Leaves out a closing worker's warnings on the instructions it cancelled once Ctrl-C or a hang-up came."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not stop_noted:
            return True
        message = record.getMessage()
        return not (message.startswith(CANCELLED_WARNING[0]) and message.endswith(CANCELLED_WARNING[1]))


def dask_setup(worker: object) -> None:
    """Note SIGINT and SIGHUP in this worker process and do nothing else with them (the command that started it stops it)."""
    logging.getLogger(STATE_MACHINE_LOGGER).addFilter(CancelledAfterStop())
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, _note_stop)
