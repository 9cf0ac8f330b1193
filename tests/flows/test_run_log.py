"""voxflow's own loggers in the Prefect run log (flows/run_log.py), on the session's Prefect server."""

from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings

import pytest
import redis
from prefect import flow
from prefect.logging.handlers import APILogWorker
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

from flows.run_log import send_to_run_log
from store.locks import hold_lock
from tests.voxflow_cli import prefect_api_call

log = logging.getLogger("store.run_log_test")


def test_voxflow_lines_reach_the_run_log_from_the_flow_and_its_threads_and_stay_quiet_outside_a_run(
    prefect_api: str, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture,
) -> None:
    @flow(name="run-log-test")
    def loses_its_lock() -> str:
        send_to_run_log("INFO")
        with hold_lock(redis_client, f"run-log-{uuid.uuid4().hex[:8]}", ttl_s=0.6) as lock:
            redis_client.delete(lock.key)  # as if it expired: the renewer, on its own thread, finds it gone
            deadline = time.monotonic() + 30
            while not any(r.getMessage().startswith("lost lock") for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.05)
        # At release, on the flow's thread: "no longer ours".
        outside = threading.Thread(target=log.warning, args=("a thread started without the run's context",))
        outside.start()
        outside.join()
        return str(flow_run.get_id())

    with warnings.catch_warnings(record=True) as warned, temporary_settings(updates={PREFECT_API_URL: prefect_api, PREFECT_LOGGING_TO_API_ENABLED: True}):
        warnings.simplefilter("always")
        run_id = loses_its_lock()
        log.warning("outside any run")
        APILogWorker.drain_all(timeout=10)  # sent before reading, and before the session's server stops

    logs = prefect_api_call({"PREFECT_API_URL": prefect_api}, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
    ours = [(entry["name"], entry["message"]) for entry in logs if not entry["name"].startswith("prefect")]
    assert [name for name, _ in ours] == ["store.locks", "store.locks"], ours
    assert ours[0][1].startswith("lost lock voxflow:lock:run-log-") and "expired before it could be renewed" in ours[0][1]  # the renewer's thread
    assert "was no longer ours at release" in ours[1][1]  # the flow's
    # Prefect's own handler would warn at each record logged outside a run ("attempted to send logs to the API without a flow run id").
    assert not [str(w.message) for w in warned if "flow run id" in str(w.message)]


def test_dasks_warnings_from_its_event_loop_reach_the_run_log_of_the_run_they_happen_in(prefect_api: str) -> None:
    # Dask's scheduler, nannies and client log from their event loop's thread, which holds no run context.
    dask = logging.getLogger("distributed.nanny")
    dask.setLevel(logging.INFO)  # as DASK_LOGGING__DISTRIBUTED may leave it: its INFO lines still stay out of the run log

    @flow(name="run-log-dask-test")
    def loses_a_worker(pid: int) -> str:
        send_to_run_log("INFO")
        for level, message in ((logging.WARNING, f"Worker process {pid} was killed by signal 9"), (logging.INFO, "Start Nanny at: 'tcp://127.0.0.1:1'")):
            loop = threading.Thread(target=dask.log, args=(level, message), name="IO loop")
            loop.start()
            loop.join()
        return str(flow_run.get_id())

    with temporary_settings(updates={PREFECT_API_URL: prefect_api, PREFECT_LOGGING_TO_API_ENABLED: True}):
        runs = [loses_a_worker(pid) for pid in (1001, 1002)]
        APILogWorker.drain_all(timeout=10)

    for run_id, pid in zip(runs, (1001, 1002)):
        logs = prefect_api_call({"PREFECT_API_URL": prefect_api}, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}})
        assert [(entry["name"], entry["message"]) for entry in logs if entry["name"].startswith("distributed")] == [
            ("distributed.nanny", f"Worker process {pid} was killed by signal 9")
        ]
