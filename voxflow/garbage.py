"""The cyclic garbage collector in voxflow's short-lived, import-heavy processes: the CLI and Dask workers.

Importing Prefect, pandas and distributed (the CLI), or numba, librosa and XGBoost (a worker),
allocates a few hundred thousand objects that live as long as the process. Every full collection
walks all of them: during the imports themselves (0.4-0.6 s of the CLI's start, 0.2-0.5 s of a
worker's on this machine) and again in the final collections of interpreter shutdown (0.6 s in a
spawned worker: most of the time a cluster took to close). ``gc.freeze`` moves them to a generation no
collection visits (in the forkserver, before the forks: no collection in a worker writes to those
shared pages); what they leave in reference cycles at exit is reclaimed with the process.
"""

from __future__ import annotations

import atexit
import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def imports_uncollected() -> Iterator[None]:
    """Pause cyclic collection while the block imports long-lived modules, then freeze what they allocated.

    Objects created later are collected as usual; the collector is left as enabled as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def freeze_at_exit() -> None:
    """Freeze every object when the interpreter exits, so that its shutdown does not walk them again.

    Registered with :mod:`atexit` (handlers run last-registered first, before modules are torn down).
    """
    atexit.register(gc.freeze)
