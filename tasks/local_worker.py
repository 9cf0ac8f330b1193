"""Dask worker preload for voxflow's local clusters: Ctrl-C is the command's to handle, not its workers'.

A terminal's Ctrl-C reaches every process in its process group, and the workers a command forks or
spawns are among them: each printed a KeyboardInterrupt traceback while the command was closing them
anyway. Workers forked from a forkserver the main thread started ignore SIGINT from their start
(:func:`tasks.forkserver.start_forkserver`); this is for spawned ones, from when it loads, and for
forked ones whose forkserver another thread started. Only local workers load this; an operator's own
``dask worker`` keeps its Ctrl-C.
"""

import signal


def dask_setup(worker: object) -> None:
    """Ignore SIGINT in this worker process (the command that started it stops it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
