"""Deployments end to end: the session's real ``prefect server``, ``voxflow deploy``, a real worker, a REST trigger."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

import psutil
import pytest
import soundfile as sf
import yaml

from features.synth import synth_vowel
from store.cache import connect_redis
from store.locks import hold_lock
from tests.voxflow_cli import REPO, env_db, finish, last_json, prefect_api_call, run_cli, start_cli, wait_for_predictions

pytestmark = pytest.mark.slow

def _deployment(env: dict[str, str], name: str) -> dict[str, Any]:
    """A deployment by name (each flow is named like its deployment)."""
    return prefect_api_call(env, f"/deployments/name/{name}/{name}")


def test_prefect_yaml_and_voxflow_deploy_agree_and_a_rest_trigger_runs_on_a_worker(cli_env: dict[str, str], tmp_path: Path) -> None:
    # The default pool name, as in prefect.yaml, so that both paths register the same deployment.
    env = {**cli_env, "VOXFLOW_SCHEDULE_TIMEZONE": "Europe/Paris"}
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d["entrypoint"] for d in config["deployments"]}
    assert set(names) == {"analyze-batch", "drain-queue", "forget-recordings", "input-drift-daily", "model-outcomes-weekly", "retrain-nightly", "backup-nightly"}
    assert {d["work_pool"]["name"] for d in config["deployments"]} == {"voxflow"}

    report = last_json(run_cli(["deploy", "--json"], env))
    assert report["work_pool"] == "voxflow" and prefect_api_call(env, "/work_pools/voxflow")["type"] == "process"
    assert set(report["deployed"]) == set(names)
    by_voxflow = _deployment(env, "drain-queue")

    # prefect.yaml as Prefect reads it, from the project root: the same deployment, its schedule in UTC.
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--name", "drain-queue"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode == 0, cli.stdout[-2000:] + cli.stderr[-2000:]
    by_prefect = _deployment(env, "drain-queue")

    assert by_voxflow["id"] == by_prefect["id"] == report["deployed"]["drain-queue"]
    for key in ("entrypoint", "pull_steps", "concurrency_options", "work_pool_name", "parameters"):
        assert by_voxflow[key] == by_prefect[key], key
    assert by_voxflow["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    assert by_voxflow["concurrency_limit"] is None  # one drain at a time is the flow's own lock (tests/flows/test_drain.py)
    [voxflow_schedule], [prefect_schedule] = by_voxflow["schedules"], by_prefect["schedules"]
    assert prefect_schedule["schedule"]["interval"] == voxflow_schedule["schedule"]["interval"] == 60
    assert (voxflow_schedule["schedule"]["timezone"], prefect_schedule["schedule"]["timezone"]) == ("Europe/Paris", "UTC")

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):
        sf.write(clips / f"c{i}.wav", synth_vowel(f0_hz=110 + 20 * i, duration_s=1.5, sr=16_000, seed=i), 16_000)
    with pytest.raises(urllib.error.HTTPError) as refused:  # the flow's own bounds, in the deployment's parameter schema
        prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(clips), "chunk_size": 0}})
    assert refused.value.code == 409 and "chunk_size" in refused.value.read().decode()  # Prefect's answer to a schema violation
    with pytest.raises(urllib.error.HTTPError) as unknown:  # was created, then crashed with SignatureMismatchError
        prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(clips), "bogus": 1}})
    assert unknown.value.code == 409 and "'bogus' was unexpected" in unknown.value.read().decode()
    run = prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(clips), "chunk_size": 2}})
    assert run["parameters"] == {"source": str(clips), "chunk_size": 2}

    worker = run_cli(["worker", "--run-once"], env, timeout=300)
    assert worker.returncode == 0, worker.stderr[-4000:]
    deadline = time.monotonic() + 60
    while (state := prefect_api_call(env, f"/flow_runs/{run['id']}")["state"]["type"]) not in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
        assert time.monotonic() < deadline, f"flow run still {state}"
        time.sleep(1)
    assert state == "COMPLETED", worker.stderr[-4000:]

    predictions = env_db(env)["predictions"]
    assert predictions.count_documents({"run_id": run["id"]}) == 4
    assert {Path(p["path"]).parent for p in predictions.find({"run_id": run["id"]})} == {clips}
    # voxflow's own loggers in the run's log (an INFO line: in this process no one had set their level).
    logs = prefect_api_call(env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}})
    assert any(entry["name"] == "tasks.cluster" and entry["message"].startswith("Dask cluster ready") for entry in logs), [entry["name"] for entry in logs]


def test_a_worker_asked_to_stop_ends_its_flow_runs_recorded_then_exits(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    # Before, SIGTERM to `voxflow worker` alone (`kill PID`, a service manager stopping its main process) killed it
    # with a traceback from its event loop; its flow run died with it, unrecorded: `running` in runs, Running in Prefect.
    env = cli_env
    report = last_json(run_cli(["deploy", "--json"], env))
    run = prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(voiced_manifest), "chunk_size": 4}})
    worker = start_cli(["worker"], env)
    try:
        wait_for_predictions(env, worker, 8)
        os.kill(worker.pid, signal.SIGTERM)  # the worker's process only: it ends its flow runs itself
        stopped = finish(worker, timeout=90)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert stopped.returncode == 143 and stopped.stderr.strip().splitlines()[-1] == "voxflow: terminated (SIGTERM)", stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert prefect_api_call(env, f"/flow_runs/{run['id']}")["state"]["type"] == "CRASHED"
    stored = env_db(env)["predictions"].count_documents({"run_id": run["id"]})
    record = env_db(env)["runs"].find_one({"run_id": run["id"]})
    assert (record["status"], record["scored"]) == ("interrupted", stored) and 8 <= stored < 208


def test_a_flow_run_whose_worker_was_killed_records_itself_interrupted_and_ends_crashed(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    # Before, `kill -9` of the worker left its flow run's next log line to a closed pipe: rich (Prefect's console
    # log) raised SystemExit(1), and the run was recorded `failed`, "SystemExit: 1", as bad input would be.
    env = {**cli_env, "PREFECT_LOGGING_LEVEL": "INFO"}  # its progress lines: the first after the kill meets the closed pipe
    report = last_json(run_cli(["deploy", "--json"], env))
    run = prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(voiced_manifest), "chunk_size": 2}})
    worker = start_cli(["worker"], env)
    try:
        wait_for_predictions(env, worker, 2)
        flow_runs = psutil.Process(worker.pid).children()
        os.kill(worker.pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(flow_runs, timeout=60)
        assert not alive, "the flow run outlived its worker"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)  # what the flow run left, if anything
    record = env_db(env)["runs"].find_one({"run_id": run["id"]})
    stored = env_db(env)["predictions"].count_documents({"run_id": run["id"]})
    assert (record["status"], record["scored"]) == ("interrupted", stored) and 2 <= stored < 208, record
    assert record["error"].endswith("before the run finished; a re-run finishes the rest"), record
    assert prefect_api_call(env, f"/flow_runs/{run['id']}")["state"]["type"] == "CRASHED"


def test_a_worker_logs_a_user_error_in_one_line_and_a_lock_by_its_name(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Before, a source not found logged three tracebacks (~40 lines each) in the worker's output and the flow run's
    # log, and the refused backup's line read "(lock voxflow🔒backup held by ...); refused" on the worker's console.
    env = {**cli_env, "PREFECT_LOGGING_LEVEL": "INFO"}
    report = last_json(run_cli(["deploy", "--json"], env))
    missing = prefect_api_call(env, f"/deployments/{report['deployed']['analyze-batch']}/create_flow_run", {"parameters": {"source": str(tmp_path / "nope")}})
    refused = prefect_api_call(env, f"/deployments/{report['deployed']['backup-nightly']}/create_flow_run", {})
    with hold_lock(connect_redis(env["VOXFLOW_REDIS_URL"]), "backup", ttl_s=120) as held:
        worker = run_cli(["worker", "--run-once"], env, timeout=300)
    output = worker.stdout + worker.stderr
    assert worker.returncode == 0, output[-4000:]
    assert prefect_api_call(env, f"/flow_runs/{missing['id']}")["state"]["type"] == "FAILED"
    logged = "\n".join(line["message"] for line in prefect_api_call(env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [missing["id"]]}}}))
    for log in (output, logged):
        assert f"source not found: {tmp_path / 'nope'}" in log and "Traceback" not in log, log[-4000:]
    assert prefect_api_call(env, f"/flow_runs/{refused['id']}")["state"]["type"] == "COMPLETED"
    assert f"Backup refused: another backup run is in progress (lock voxflow:lock:backup held by {held.token})\n" in output, output[-4000:]
