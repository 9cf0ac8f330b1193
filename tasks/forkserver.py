"""The forkserver that local Dask workers fork from, and the environment they start in."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

import psutil

from voxflow.interrupts import TERMINAL_SIGNALS
from voxflow.settings import Settings

WORKER_PRELOAD = "tasks.worker_preload"  # the feature stack, XGBoost and numba's kernels, loaded once per process


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment of worker processes: one BLAS/numba thread each, quiet Dask logs.

    numba keeps its JIT cache next to librosa in the environment (or in the user's cache folder when
    that is read-only), shared by every worker and every run; ``numba_cache_dir`` moves it.
    """
    single = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env = {**single, "DASK_LOGGING__DISTRIBUTED": "warning"}
    if settings.numba_cache_dir is not None:
        settings.numba_cache_dir.mkdir(parents=True, exist_ok=True)
        env["NUMBA_CACHE_DIR"] = str(settings.numba_cache_dir)
    return env


def start_forkserver(settings: Settings) -> bool:
    """Start this process's forkserver now, in the workers' environment, importing :mod:`tasks.worker_preload`.

    Its imports and numba's kernels (~2.5 s of CPU) then load beside the caller's own work, and a
    local cluster's workers fork from it when they start. There is one forkserver per process: once
    it runs, this does nothing (a later cluster with another ``numba_cache_dir`` still gets the first).
    Nothing starts where workers are spawned or settings name a scheduler or a cluster class.

    Started from the main thread, the forkserver, multiprocessing's resource tracker and every worker the
    forkserver forks ignore SIGINT and SIGHUP from their first instruction: a terminal's Ctrl-C or hang-up
    is the command's to handle. A Ctrl-C that came while the forkserver imported its preload killed it, so
    the cluster's workers could not start; a hang-up killed the resource tracker, and the one started in its
    place printed a KeyError traceback for each shared-memory name it had never seen.

    Returns
    -------
    bool
        Whether local workers fork from this process's forkserver.
    """
    if settings.dask_start_method != "forkserver" or settings.dask_address or settings.dask_cluster_class:
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload([WORKER_PRELOAD])
    with _environ(worker_env(settings)), _terminal_signals_ignored():  # numba and BLAS read theirs when imported: in the forkserver
        multiprocessing.forkserver.ensure_running()
    return True


def is_forkserver(process: psutil.Process) -> bool:
    """Whether ``process`` is a multiprocessing forkserver (the children it forks have its command line too)."""
    return "from multiprocessing.forkserver import main" in " ".join(process.cmdline())


@contextmanager
def _terminal_signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGHUP (a terminal's Ctrl-C and hang-up) inside the block, where this is the main thread
    (the only one that may say so).

    An ignored signal is inherited across fork and exec, and Python then installs no handler of its own for
    SIGINT. One that comes meanwhile (the few milliseconds of starting a process) is lost to the caller too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in TERMINAL_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _environ(updates: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
