"""The Dask cluster a flow fans out to: an adaptive LocalCluster by default, or an existing scheduler."""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import logging
import math
import os
import re
import signal
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager, suppress
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import dask
import distributed.utils
import psutil
import yaml
from distributed import Client, LocalCluster
from distributed.comm import connect
from distributed.deploy import Cluster
from distributed.diagnostics.plugin import WorkerPlugin

from tasks.forkserver import WORKER_PRELOAD, is_forkserver, start_forkserver, worker_env
from tasks.scheduler_watch import scheduler_watched
from voxflow.errors import ClusterError, ServiceError
from voxflow.garbage import freeze_at_exit
from voxflow.interrupts import stop_signal
from voxflow.scaling import Bounds
from voxflow.settings import Settings

log = logging.getLogger(__name__)

# Kubernetes' 63 characters for a resource name, less the "-scheduler" the operator appends for its service.
_MAX_CLUSTER_NAME_LEN = 53
_CLUSTER_NAME_LABEL = "dask.org/cluster-name"
# How long workers started for a batch may wait idle for its first chunk (discovery, hashing) before adaptive
# scaling may retire them; thereafter idle workers go after this long too (the default is 3 s).
STARTUP_GRACE_S = 10.0
LOCAL_WORKER_PRELOAD = "tasks.local_worker"


class WarmUp(WorkerPlugin):
    """Pay numba's JIT and the feature and model libraries' imports when a worker starts, not in its first chunk."""

    idempotent = True
    name = "voxflow-warm-up"

    def setup(self, worker: object) -> None:
        # A forked worker has it from the forkserver already; a spawned one (or a remote cluster's) loads it here.
        importlib.import_module(WORKER_PRELOAD)
        freeze_at_exit()  # a spawned worker's shutdown; a forked one ends with os._exit and has none


def described(exc: BaseException) -> str:
    """``Type: message`` of an error, its message's first sentence; an error distributed re-raised as a plain
    ``Exception("Type('message')")`` (a worker's, to a plugin's registration) as the error it wraps.

    Examples
    --------
    >>> described(Exception('''ModuleNotFoundError("No module named 'tasks'")'''))
    "ModuleNotFoundError: No module named 'tasks'"
    >>> described(RuntimeError("Error during deserialization of the task graph. This frequently\\noccurs if ..."))
    'RuntimeError: Error during deserialization of the task graph'
    """
    kind, message = type(exc).__name__, str(exc).strip()
    if wrapped := re.fullmatch(r"(\w+)\(([\"'])(.*)\2\)", message, re.DOTALL):
        kind, message = wrapped[1], wrapped[3]
    first_line = message.splitlines()[0] if message else ""
    return f"{kind}: {first_line.partition('. ')[0]}"


def cannot_run(exc: BaseException, address: str) -> ClusterError:
    """The run's error for a task or plugin that failed on the cluster at ``address`` whatever its files: the
    scheduler or a worker cannot load voxflow's code (not installed there, or another version)."""
    return ClusterError(f"the Dask cluster at {address} cannot run voxflow's tasks ({described(exc)}): install voxflow (this version) on the scheduler and workers")


def pre_spawn_environ() -> dict[str, object]:
    """Dask's environment for new worker processes, less its ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets glibc's trim threshold to 64 KiB so that idle workers hand memory back. Setting it
    also fixes glibc's mmap threshold at 128 KiB, so every spectrogram-sized array is mapped and
    unmapped afresh: measured on 208 VOICED files, 6x the page faults and +2.2 s of system CPU
    (+40 % CPU per file). voxflow's workers stream chunks and stay flat without it (bench/memory.py).
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


@contextmanager
def _worker_config(settings: Settings) -> Iterator[None]:
    """Dask's config for new workers, held for a cluster's life (every nanny reads it, adaptive scaling's
    later ones included).

    - Their environment: :func:`pre_spawn_environ` and :func:`worker_env`, set by Dask in this process
      before it starts one (a spawned worker's) or by :func:`~tasks.forkserver.start_forkserver`.
    - How they start (``dask_start_method``): forked from the forkserver (started here unless it runs
      already), or spawned.
    - No statistical profiler: it samples the running thread every 10 ms and costs GIL time on
      CPU-bound work. Said here, in the config each nanny hands its worker, because that config is
      applied over whatever the worker's environment says.
    - :mod:`tasks.local_worker` as a preload: they leave a terminal's Ctrl-C to the command.
    """
    config = {
        "distributed.nanny.pre-spawn-environ": {**pre_spawn_environ(), **worker_env(settings)},
        "distributed.worker.multiprocessing-method": settings.dask_start_method,
        "distributed.worker.profile.enabled": False,
        "distributed.worker.preload": [*dask.config.get("distributed.worker.preload"), LOCAL_WORKER_PRELOAD],
    }
    with dask.config.set(config):
        if start_forkserver(settings):
            # The first time distributed asks for the forkserver context, it imports pandas and lz4 into
            # this process (~0.5 s) only to name them as the forkserver's preload: ours runs already.
            distributed.utils._forkserver_preload_set = True
        yield


def local_worker_processes(root: psutil.Process) -> list[psutil.Process]:
    """The Dask worker processes of local clusters started under ``root`` (a CLI or flow process).

    Spawned workers run ``multiprocessing.spawn``; forked ones are children of ``root``'s forkserver.
    """
    def is_worker(process: psutil.Process) -> bool:
        if "spawn_main" in " ".join(process.cmdline()):
            return True
        return process.ppid() != root.pid and is_forkserver(psutil.Process(process.ppid()))

    workers = []
    for process in root.children(recursive=True):
        try:
            if is_worker(process):
                workers.append(process)
        except psutil.Error:  # exited meanwhile
            continue
    return workers


def resolve_cluster_class(path: str) -> type[Cluster]:
    """Import a cluster class named ``package.module.Class`` (or ``package.module:Class``).

    Raises
    ------
    ServiceError
        When the module or class does not exist (with the pip extra to install for Kubernetes).
    """
    module_name, _, class_name = path.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ServiceError(
            f"VOXFLOW_DASK_CLUSTER_CLASS={path} cannot be imported ({exc}); "
            "for Kubernetes install the extra: pip install 'voxflow[kubernetes]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Cluster)):
        raise ServiceError(f"VOXFLOW_DASK_CLUSTER_CLASS={path} is not a Dask cluster class")
    return cls


def renamed_cluster_spec(spec: dict[str, Any], suffix: str) -> dict[str, Any]:
    """A copy of a DaskCluster spec, its cluster named ``{metadata.name}-{suffix}``.

    The name is in two fields: ``metadata.name`` (which dask-kubernetes' KubeCluster takes as its own,
    and the operator labels the scheduler pod with) and the scheduler service's selector of that label.
    The base name is shortened so that the whole stays a valid cluster name.
    """
    renamed = copy.deepcopy(spec)
    base = renamed["metadata"]["name"][: _MAX_CLUSTER_NAME_LEN - len(suffix) - 1].rstrip("-.")
    renamed["metadata"]["name"] = f"{base}-{suffix}"
    selector = renamed.get("spec", {}).get("scheduler", {}).get("service", {}).get("selector", {})
    if _CLUSTER_NAME_LABEL in selector:
        selector[_CLUSTER_NAME_LABEL] = renamed["metadata"]["name"]
    return renamed


def run_cluster_kwargs(cls: type[Cluster], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``dask_cluster_kwargs`` for one run of ``cls``: its ``custom_cluster_spec`` (a file's path or a dict,
    from the kwargs or else from Dask's ``kubernetes.custom-cluster-spec`` config, where KubeCluster looks
    too) loaded and given a name of its own by :func:`renamed_cluster_spec`.

    KubeCluster connects to a cluster of the spec's name that exists already, and deletes it on close:
    runs side by side (a drain every minute beside an analyze) would share, then lose, one cluster.

    Raises
    ------
    ServiceError
        When the spec file cannot be read.
    """
    spec, source = kwargs.get("custom_cluster_spec"), "the custom_cluster_spec of VOXFLOW_DASK_CLUSTER_KWARGS"
    if spec is None and "custom_cluster_spec" in inspect.signature(cls).parameters:
        spec, source = dask.config.get("kubernetes.custom-cluster-spec", None), "Dask's kubernetes.custom-cluster-spec"
    if spec is None:
        return kwargs
    if isinstance(spec, str):
        try:
            with open(spec) as stream:
                spec = yaml.safe_load(stream)
        except (OSError, yaml.YAMLError) as exc:
            raise ServiceError(f"cannot read {source}: {exc}") from exc
    return {**kwargs, "custom_cluster_spec": renamed_cluster_spec(spec, uuid.uuid4().hex[:8])}


class _AnnouncingCluster(LocalCluster):
    """A LocalCluster that hands its scheduler's address to ``announce`` once the scheduler listens, before
    its workers start (the constructor returns only once they have)."""

    def __init__(self, *, announce: Callable[[str], None], **kwargs: Any) -> None:
        self._announce: Callable[[str], None] | None = announce
        super().__init__(**kwargs)

    async def _start(self) -> None:
        await super()._start()
        if self._announce is not None:  # _start runs again, a no-op, when the cluster is awaited
            self._announce(self.scheduler.address)
            self._announce = None


def initial_workers(files: int, settings: Settings, chunk_size: int) -> int:
    """Workers to start for a batch of ``files``: one per ``chunk_size`` files (rounded up), within the adaptive bounds.

    Examples
    --------
    >>> settings = Settings(dask_min_workers=1, dask_max_workers=4)
    >>> [initial_workers(files, settings, 48) for files in (0, 45, 60, 500)]
    [1, 1, 2, 4]
    """
    return min(settings.dask_max_workers, max(settings.dask_min_workers, -(-files // chunk_size)))


def _start_cluster(settings: Settings, *, workers: int | None = None, announce: Callable[[str], None] | None = None) -> Cluster:
    """Start the configured cluster; a local one with ``workers`` (default: the minimum), adapting from there."""
    adapt: dict[str, Any] = {"minimum": settings.dask_min_workers, "maximum": settings.dask_max_workers}
    if settings.dask_cluster_class:
        cls = resolve_cluster_class(settings.dask_cluster_class)
        cluster = cls(**run_cluster_kwargs(cls, settings.dask_cluster_kwargs))
    else:
        options: dict[str, Any] = {"n_workers": workers or settings.dask_min_workers, "threads_per_worker": 1, "processes": True,
                                   "host": "127.0.0.1", "dashboard_address": ":0"}
        cluster = LocalCluster(**options) if announce is None else _AnnouncingCluster(announce=announce, **options)
        if options["n_workers"] > settings.dask_min_workers:
            # Adaptive scaling retires an idle worker after wait_count intervals (3 s): started ahead of the
            # batch's discovery, the workers above the minimum would be gone before its first chunk.
            interval = dask.utils.parse_timedelta(dask.config.get("distributed.adaptive.interval"))
            adapt["wait_count"] = max(dask.config.get("distributed.adaptive.wait-count"), math.ceil(STARTUP_GRACE_S / interval))
    cluster.adapt(**adapt)
    return cluster


@contextmanager
def dask_client(settings: Settings, *, warm_up: bool = True, workers: int | None = None) -> Iterator[Client]:
    """A Dask client for one flow run.

    With ``settings.dask_address`` it connects to that scheduler and leaves the cluster running, with
    voxflow's plugins on it: another run may be using them (its worker changes, the warm-up of its new
    workers), and every worker of a cluster that runs voxflow needs voxflow anyway. Otherwise it starts
    ``settings.dask_cluster_class`` (default: a LocalCluster of ``workers`` single-threaded worker
    processes, by default the minimum), adapting between ``dask_min_workers`` and ``dask_max_workers``,
    and closes it afterwards. The scheduler is watched meanwhile (:func:`~tasks.scheduler_watch.scheduler_watched`).

    Raises
    ------
    ServiceError
        When the scheduler is unreachable; a :class:`~voxflow.errors.ClusterError` when it does not
        answer, stops answering for ``settings.dask_scheduler_timeout_s``, or its workers cannot load
        voxflow's warm-up plugin.
    """
    with ExitStack() as stack:
        if settings.dask_address:
            client = connect_scheduler(settings.dask_address)
        else:
            stack.enter_context(_worker_config(settings))
            client = Client(stack.enter_context(_start_cluster(settings, workers=workers)))
        stack.callback(_close, client)  # before the cluster closes: callbacks run last in, first out
        stack.enter_context(scheduler_watched(client, timeout_s=settings.dask_scheduler_timeout_s))
        if warm_up:
            try:
                client.register_plugin(WarmUp())
            except OSError:  # the scheduler, not the plugin
                raise
            except Exception as exc:  # a worker's error loading it, re-raised as a plain Exception
                raise cannot_run(exc, client.scheduler.address) from exc
        log.info("Dask cluster ready: %s (dashboard %s)", client.scheduler.address, client.dashboard_link)
        yield client


WAITING_SAID_EVERY_S = 10.0


def first_worker_joined(client: Client, *, timeout_s: float, said_every_s: float = WAITING_SAID_EVERY_S) -> None:
    """Return once the scheduler of ``client`` has a worker; while none has, say so every ``said_every_s``.

    A local worker starts in 1-3 s, but on the first run after an install or an update numba compiles its
    kernels first (~30 s), and a remote cluster may be starting its workers: the model's copy to them had
    waited 20 s, then failed the run.

    Raises
    ------
    ClusterError
        When no worker joined within ``timeout_s``.
    """
    began = time.monotonic()
    while True:
        left = timeout_s - (time.monotonic() - began)
        try:
            client.wait_for_workers(1, timeout=max(min(said_every_s, left), 0.01))
            return
        except TimeoutError:
            waited = time.monotonic() - began
            if waited >= timeout_s:
                raise ClusterError(
                    f"the Dask scheduler at {client.scheduler.address} has no workers: none joined within {timeout_s:g} s "
                    "(VOXFLOW_DASK_WORKER_START_TIMEOUT_S)"
                ) from None
            log.info("Waiting for the first Dask worker to join the scheduler at %s (%.0f s so far, up to %.0f s): a first run after "
                     "an install or an update compiles numba's kernels as its workers start", client.scheduler.address, waited, timeout_s)


SCHEDULER_TIMEOUT_S = 20.0


def connect_scheduler(address: str, *, timeout_s: float = SCHEDULER_TIMEOUT_S, set_as_default: bool = True) -> Client:
    """A client of the scheduler at ``address``, once that answers Dask's handshake (``set_as_default``: as Client's).

    ``Client(address, timeout=...)`` bounds the TCP connection, not the handshake after it: a listener
    that accepts and never answers (an HTTP port, a scheduler stopped by SIGSTOP) kept it waiting forever.
    The handshake is tried first, on a thread of its own (the caller's may run an event loop already).

    Raises
    ------
    ClusterError
        When it accepted the connection but did not answer within ``timeout_s`` (and a second).
    ServiceError
        When it is unreachable (refused, no route) for ``timeout_s``.
    """
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dask-handshake") as pool:
            pool.submit(asyncio.run, _handshake(address, timeout_s)).result()
        return Client(address, timeout=f"{timeout_s}s", set_as_default=set_as_default)
    except TimeoutError as exc:  # an OSError: first
        raise ClusterError(f"Dask scheduler at {address} did not answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ServiceError(f"Dask scheduler at {address} is unreachable: {exc}") from exc


async def _handshake(address: str, timeout_s: float) -> None:
    # A second more than distributed's own retries of a refused connection, so that those say why they failed.
    comm = await asyncio.wait_for(connect(address, timeout=timeout_s), timeout_s + 1)
    comm.abort()


class _CancelledReconnection(logging.Filter):
    """Leaves out distributed's records of a client's attempt to reconnect to a lost scheduler, cut short by the
    client's own close: a CancelledError's traceback, and "Failed to reconnect to scheduler after 20.00 seconds"
    (both ERROR), however soon it closed."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return not (cancelled or record.getMessage().startswith("Failed to reconnect to scheduler"))


def _close(client: Client) -> None:
    """Close ``client``; once its scheduler is lost, without the traceback of its reconnection cut short (the
    run ends with its own one-line error)."""
    quiet = _CancelledReconnection()
    logging.getLogger("distributed.client").addFilter(quiet)
    try:
        client.close()
    finally:
        logging.getLogger("distributed.client").removeFilter(quiet)


# The schedulers of the clusters local_cluster_ahead started in this process and has not closed yet.
_STARTED_AHEAD: set[str] = set()


def started_ahead(address: str | None) -> bool:
    """Whether ``address`` is the scheduler of a local cluster :func:`local_cluster_ahead` started in this process
    (voxflow's own, adaptive within its bounds), not an existing cluster's."""
    return address in _STARTED_AHEAD


def cluster_bounds(settings: Settings) -> Bounds:
    """The bounds of the cluster a run with ``settings`` uses (:meth:`~voxflow.scaling.Bounds.of`): the local cluster
    the CLI started ahead and handed over by address keeps voxflow's."""
    return Bounds.of(settings, started_here=started_ahead(settings.dask_address))


def _forget(announced: Future[str]) -> None:
    if announced.done():
        _STARTED_AHEAD.discard(announced.result())


@contextmanager
def local_cluster_ahead(settings: Settings, *, workers: int | None = None) -> Iterator[Callable[[], str | None]]:
    """Start the run's local cluster of ``workers`` (default: the minimum) on a thread now, while the caller
    imports and sets up the flow run.

    Starting and warming up the workers (process spawn, imports, numba cache) takes seconds, as does a
    command's own start (imports, Prefect's flow-run set-up): the CLI overlaps the two. Yields a function
    that returns the scheduler's address, for :func:`handed_over`, once the scheduler
    listens (its workers may still be starting); it returns None, and nothing starts, when settings
    already name a scheduler or a cluster class. The cluster closes on exit; until then :func:`started_ahead`
    knows its address as voxflow's own cluster.

    Raises
    ------
    ServiceError
        From the function or on exit, when the cluster did not start.
    """
    if settings.dask_address or settings.dask_cluster_class:
        yield lambda: None
        return
    announced: Future[str] = Future()

    def announce(address: str) -> None:
        _STARTED_AHEAD.add(address)  # before the caller can have it
        announced.set_result(address)

    with ExitStack() as stack:
        stack.callback(_forget, announced)  # last: once the cluster, still starting or not, is closed
        stack.enter_context(_worker_config(settings))
        starting = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="dask-ahead")).submit(_start_warm, settings, workers, announce)
        stack.push(lambda kind, exc, tb: _close_started(starting, stopped=exc is not None and stop_signal(exc) is not None))
        yield lambda: _scheduler_address(announced, starting)


# The scheduler handed to the flow runs started in this context: the CLI's cluster started ahead. Not a flow parameter,
# which anyone who may trigger the deployment over the API could point at a host of theirs (Dask's protocol pickles).
_HANDED_OVER: ContextVar[str | None] = ContextVar("voxflow_handed_over_scheduler", default=None)


@contextmanager
def handed_over(address: str | None) -> Iterator[None]:
    """Flow runs started inside (in this context) fan out to the Dask scheduler at ``address``, such as the one
    :func:`local_cluster_ahead` started; None leaves them the configured cluster."""
    token = _HANDED_OVER.set(address)
    try:
        yield
    finally:
        _HANDED_OVER.reset(token)


def with_handed_cluster(settings: Settings) -> Settings:
    """``settings``, naming the scheduler :func:`handed_over` handed to this context, if any."""
    address = _HANDED_OVER.get()
    return settings.model_copy(update={"dask_address": address}) if address else settings


def _close_started(starting: Future[Cluster], *, stopped: bool) -> None:
    """Close the cluster ``local_cluster_ahead`` started; once a stop signal ended the command, its workers first
    go at once (:func:`_end_workers`)."""
    cluster = _started(starting)
    if stopped:
        _end_workers(cluster)
    cluster.close()


def _end_workers(cluster: Cluster) -> None:
    """SIGKILL the worker processes of a local ``cluster``, each nanny told not to start another.

    A worker closing waits for the chunk it runs (seconds on long recordings), then its nanny kills it after 4 s
    with a warning ("Worker process still alive after 4.0 seconds, killing"). A stopped run keeps nothing on its
    workers (what it stored is in MongoDB, a re-run finishes the rest): the close that follows takes ~0.1 s.
    """
    for nanny in list(cluster.workers.values()):
        nanny.close_gracefully(reason="voxflow-stopped")  # not restarted once its process dies
        worker = getattr(nanny, "process", None)
        pid = getattr(getattr(worker, "process", None), "pid", None)
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_warm(settings: Settings, workers: int | None, announce: Callable[[str], None]) -> Cluster:
    cluster = _start_cluster(settings, workers=workers, announce=announce)
    try:
        with Client(cluster) as client:
            client.register_plugin(WarmUp())
    except BaseException:
        cluster.close()  # its workers would otherwise live until the interpreter's exit
        raise
    return cluster


def _scheduler_address(announced: Future[str], starting: Future[Cluster]) -> str:
    wait([announced, starting], return_when=FIRST_COMPLETED)
    return announced.result() if announced.done() else _started(starting).scheduler_address


def _started(starting: Future[Cluster]) -> Cluster:
    try:
        return starting.result()
    except Exception as exc:
        raise ServiceError(f"the local Dask cluster did not start: {type(exc).__name__}: {exc}") from exc
