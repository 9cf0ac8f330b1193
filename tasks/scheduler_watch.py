"""Watch a Dask client's scheduler while a run uses it: a warning once it stops answering, the run's end after a timeout.

A scheduler process that is stopped (SIGSTOP, a frozen host) keeps its connections open and its kernel takes
what is sent to it: the client waits for its answers forever. Finished chunks cannot tell that apart from a slow
one, so the scheduler is asked a cheap question (its identity, without its workers) every few seconds instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Iterator

from distributed import Client

from voxflow.errors import ClusterError

log = logging.getLogger(__name__)

PROBE_S = 2.0  # between two questions to the scheduler (and between two looks at one not answered yet)
WARN_AFTER_S = 10.0  # without an answer, before the warning


class SchedulerWatch:
    """Asks ``client``'s scheduler on a thread of its own whether it answers, until :meth:`stop`: a question every
    ``PROBE_S`` once the last is answered, however long that took.

    Without an answer for ``WARN_AFTER_S`` (or half of ``timeout_s``, if less) it logs a warning naming the
    scheduler, and a line once it answers again. Without one for ``timeout_s`` it sets :attr:`error` and cuts
    the client off its scheduler, as a lost connection would: the client cancels the run's futures and every
    call waiting on the scheduler raises, so the run ends instead of waiting.
    """

    def __init__(self, client: Client, *, timeout_s: float) -> None:
        self._client = client
        self._address = client.scheduler.address
        self._timeout_s = timeout_s
        self._warn_after_s = min(WARN_AFTER_S, timeout_s / 2)
        self._probe_s = min(PROBE_S, timeout_s / 4)
        self._stopped = threading.Event()
        self.error: ClusterError | None = None
        # In the starter's context: its lines reach the Prefect run's log (flows/run_log.py).
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._watch,), name="voxflow-scheduler-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop asking (within one question's wait)."""
        self._stopped.set()
        self._thread.join()

    def _ask(self) -> Future[object]:
        """The scheduler's answer to a question asked now (on the client's event loop)."""
        return asyncio.run_coroutine_threadsafe(self._client.scheduler.identity(n_workers=0), self._client.loop.asyncio_loop)

    def _watch(self) -> None:
        answered, warned = time.monotonic(), False
        asking: Future[object] | None = None
        while not self._stopped.is_set():
            try:
                if asking is None:
                    asking = self._ask()
                asking.result(timeout=self._probe_s)  # a slow answer is an answer: it is awaited past this wait
            except Exception:  # no answer yet; or none to come (the connection lost): asked again a while later
                if asking is None or asking.done():
                    asking = None
                    self._stopped.wait(self._probe_s)
            else:
                asking = None
                answered = time.monotonic()
                if warned:
                    log.info("The Dask scheduler at %s answers again", self._address)
                    warned = False
                self._stopped.wait(self._probe_s)
                continue
            silent = time.monotonic() - answered
            if silent >= self._timeout_s:
                self._give_up()
                break
            if silent >= self._warn_after_s and not warned:
                log.warning(
                    "The Dask scheduler at %s has not answered for %.0f s: the run fails if it does not answer within %g s (VOXFLOW_DASK_SCHEDULER_TIMEOUT_S)",
                    self._address, silent, self._timeout_s,
                )
                warned = True
        if asking is not None:
            asking.cancel()

    def _give_up(self) -> None:
        self.error = ClusterError(f"Dask scheduler at {self._address} stopped answering mid-run (no answer for {self._timeout_s:g} s): re-run to finish the rest")
        with suppress(Exception):  # a client closing meanwhile is cut off already
            self._client.sync(_cut_off, self._client, callback_timeout=self._probe_s)


async def _cut_off(client: Client) -> None:
    # The report stream aborted: the client cancels its futures and tries to reconnect, until it is closed. The
    # calls' connection pool closed: calls waiting on the scheduler raise CommClosedError, later ones fail at once.
    if client.scheduler_comm is not None:
        client.scheduler_comm.abort()
    await client.rpc.close()


@contextmanager
def scheduler_watched(client: Client, *, timeout_s: float) -> Iterator[SchedulerWatch]:
    """A :class:`SchedulerWatch` of ``client`` for the block. An error that ends the block once the watch has given up
    on the scheduler (whatever the calls it cut off raised) is replaced by the watch's one-line :class:`ClusterError`."""
    watch = SchedulerWatch(client, timeout_s=timeout_s)
    try:
        yield watch
    except Exception as exc:
        if watch.error is None:
            raise
        raise watch.error from exc
    finally:
        watch.stop()
