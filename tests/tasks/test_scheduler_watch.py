"""The scheduler watch of a run's client: a real ``dask scheduler`` process stopped with SIGSTOP, and a slow task on one that answers."""

from __future__ import annotations

import contextvars
import logging
import re
import signal
import time
from pathlib import Path

import pytest
from distributed import LocalCluster

from tasks.cluster import dask_client
from tests.helpers import dask_processes
from voxflow.errors import ClusterError
from voxflow.settings import Settings


RUN = contextvars.ContextVar("RUN")


class TaggedWithRun(logging.Filter):
    """Tags each record with the ``RUN`` of the context it was logged in (Prefect's run context travels so)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run = RUN.get(None)
        return True


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tasks.scheduler_watch" and r.levelno == logging.WARNING]


@pytest.mark.timeout(60)
def test_a_scheduler_stopped_mid_run_ends_the_wait_with_one_error_after_the_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The client waited for a stopped scheduler's answer forever: the run hung, and said nothing.
    with dask_processes(tmp_path, workers=1) as cluster:
        settings = Settings(home=tmp_path, dask_address=cluster.address, dask_scheduler_timeout_s=4)
        with pytest.raises(ClusterError) as raised:
            with dask_client(settings, warm_up=False) as client:
                future = client.submit(time.sleep, 30)  # a task the scheduler can unpickle: it cannot import tests/
                cluster.scheduler.send_signal(signal.SIGSTOP)
                stopped = time.monotonic()
                future.result()
        waited = time.monotonic() - stopped
    assert raised.value.reason == f"Dask scheduler at {cluster.address} stopped answering mid-run (no answer for 4 s): re-run to finish the rest"
    assert 3 <= waited < 8, waited  # 4 s from its last answer, up to a question's interval (1 s) before it stopped
    [warning] = _warnings(caplog)
    assert re.fullmatch(rf"The Dask scheduler at {cluster.address} has not answered for [23] s: the run fails if it does not answer within 4 s "
                        r"\(VOXFLOW_DASK_SCHEDULER_TIMEOUT_S\)", warning), warning


@pytest.mark.timeout(60)
def test_a_scheduler_paused_for_less_than_the_timeout_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tasks.scheduler_watch")
    tagged = TaggedWithRun()
    logging.getLogger("tasks.scheduler_watch").addFilter(tagged)
    token = RUN.set("this run")
    with dask_processes(tmp_path, workers=1) as cluster:
        with dask_client(Settings(home=tmp_path, dask_address=cluster.address, dask_scheduler_timeout_s=10), warm_up=False) as client:
            future = client.submit(time.sleep, 1)
            cluster.scheduler.send_signal(signal.SIGSTOP)
            time.sleep(7)  # past the warning (5 s), short of the timeout
            cluster.scheduler.send_signal(signal.SIGCONT)
            assert future.result() is None
            deadline = time.monotonic() + 5
            while "answers again" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.1)
    logging.getLogger("tasks.scheduler_watch").removeFilter(tagged)
    RUN.reset(token)
    assert len(_warnings(caplog)) == 1 and f"The Dask scheduler at {cluster.address} answers again" in caplog.text
    # Logged on the watch's thread in the context it was started in: a flow's lines reach its Prefect run log (flows/run_log.py).
    assert {getattr(r, "run", None) for r in caplog.records if r.name == "tasks.scheduler_watch"} == {"this run"}


@pytest.mark.timeout(60)
def test_a_task_slower_than_the_timeout_is_not_cut_short_while_the_scheduler_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # What is watched is the scheduler's answers, not finished tasks: a chunk may take minutes.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with dask_client(Settings(home=tmp_path, dask_address=cluster.scheduler_address, dask_scheduler_timeout_s=1), warm_up=False) as client:
            assert client.submit(time.sleep, 3).result() is None
    assert _warnings(caplog) == []
