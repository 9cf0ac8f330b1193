"""Failures with real processes: a worker SIGKILLed mid-run, MongoDB or Redis gone for seconds, the Prefect API gone, a remote cluster."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psutil
import pytest
import redis
import soundfile as sf

from features.synth import synth_vowel
from store.counts import BIN_FIELDS, COUNTS, SCORES
from tests.flows.conftest import repeated_hashes
from tests.helpers import dask_processes, sigint_action
from tests.proxy import TcpProxy, proxied_redis
from tests.voxflow_cli import REPO, env_db, finish, last_json, prefect_api_call, run_cli, start_cli, wait_for_predictions
from tasks.cluster import local_worker_processes
from tasks.forkserver import is_forkserver
from voxflow import services
from voxflow.settings import Settings

pytestmark = pytest.mark.slow
N_VOICED = 208


def _assert_exactly_once(env: dict[str, str]) -> None:
    predictions = env_db(env)["predictions"]
    assert predictions.count_documents({}) == N_VOICED
    assert repeated_hashes(predictions) == []


def test_sigkilled_worker_is_replaced_and_every_file_scored_once(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8", "VOXFLOW_DASK_MIN_WORKERS": "2"}
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    wait_for_predictions(env, proc, 24)
    workers = local_worker_processes(psutil.Process(proc.pid))
    assert workers, "no Dask worker processes found under the analyze process"
    os.kill(workers[0].pid, signal.SIGKILL)
    summary = last_json(finish(proc))
    assert summary["scored"] == N_VOICED and summary["quarantined"] == 0
    _assert_exactly_once(env)
    events = list(env_db(env)["scaling_events"].find({"run_id": summary["run_id"]}))
    assert events and events[0]["workers_after"] >= 1 and "recommendation" in events[0]
    assert any(e["reason"] == "worker removed" and e["workers_after"] < e["workers_before"] for e in events), events  # the killed one
    # Dask's own account of it, logged from its event loop's thread, is in the run's log too (flows/run_log.py).
    logged = prefect_api_call(env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [summary["run_id"]]}}})
    dask_lines = [(entry["name"], entry["message"]) for entry in logged if entry["name"].startswith("distributed.")]
    assert ("distributed.nanny", "Restarting worker (status=Status.running)") in dask_lines, dask_lines


def test_ctrl_c_ends_with_one_line_and_a_rerun_finishes_the_rest(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "48"}  # chunks of seconds: the Ctrl-C lands while each worker runs one
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    wait_for_predictions(env, proc, 16)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the command and its workers alike
    interrupted = finish(proc)
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr, interrupted.stderr[-3000:]  # the workers printed one each
    assert "Crash detected" not in interrupted.stderr, interrupted.stderr[-3000:]  # Prefect's ERROR lines for a Ctrl-C
    # Nor any other warning: the workers closing with chunks running each logged one ("Async instruction ... ended with CancelledError").
    assert [line for line in interrupted.stderr.splitlines() if re.search(r"\b(WARNING|ERROR)\b", line)] == [], interrupted.stderr[-3000:]
    assert interrupted.stderr.strip().splitlines()[-1] == "voxflow: interrupted; re-run the same command to finish the rest", interrupted.stderr[-3000:]
    run = env_db(env)["runs"].find_one({"status": {"$ne": "running"}})
    assert run["status"] == "interrupted" and run["scored"] == env_db(env)["predictions"].count_documents({"run_id": run["run_id"]}) > 0, run
    summary = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
    assert summary["scored"] + summary["skipped"] == N_VOICED and summary["skipped"] >= run["scored"]
    _assert_exactly_once(env)


@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGTERM, False), (signal.SIGHUP, True)], ids=["sigterm-to-the-command", "sighup-to-its-group"])
def test_a_termination_ends_with_one_line_the_run_recorded_and_a_rerun_finishes_the_rest(
    cli_env: dict[str, str], voiced_manifest: Path, signum: signal.Signals, to_group: bool
) -> None:
    # SIGTERM: a service manager, `kill PID`, Prefect cancelling; SIGHUP: the terminal closed (to its whole job).
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "48"}
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    wait_for_predictions(env, proc, 16)
    (os.killpg if to_group else os.kill)(proc.pid, signum)
    stopped = finish(proc)
    assert stopped.returncode == 128 + signum, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "Crash detected" not in stopped.stderr, stopped.stderr[-3000:]
    assert stopped.stderr.strip().splitlines()[-1] == f"voxflow: terminated ({signum.name}); re-run the same command to finish the rest"
    run = env_db(env)["runs"].find_one({"status": {"$ne": "running"}})
    assert (run["status"], run["error"]) == ("interrupted", f"{signum.name} before the run finished; a re-run finishes the rest"), run
    assert run["scored"] == env_db(env)["predictions"].count_documents({"run_id": run["run_id"]}) > 0, run
    assert prefect_api_call(env, f"/flow_runs/{run['run_id']}")["state_type"] == "CRASHED"  # not left Running
    summary = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
    assert summary["scored"] + summary["skipped"] == N_VOICED and summary["skipped"] >= run["scored"]
    _assert_exactly_once(env)


def _run_cli_with(prelude: str, args: list[str], env: dict[str, str], folder: Path) -> subprocess.CompletedProcess:
    """Run ``voxflow ARGS`` as the console script does, after ``prelude`` (Python, with ``signal``, ``sys`` and
    ``voxflow.cli as cli`` imported) has run in the command's process."""
    body = "\n".join(f"    {line}" for line in f"{prelude}\nsys.exit(cli.main({args!r}))".splitlines())
    # Only as the command: its workers' processes import this module too (as __mp_main__).
    (folder / "prelude_command.py").write_text(f"import signal, sys\nimport voxflow.cli as cli\nif __name__ == '__main__':\n{body}\n")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "prelude_command"], env=env, cwd=REPO, capture_output=True, text=True, timeout=240)


# A Ctrl-C that the SIGINT handler raises while a gc callback runs in the main thread (distributed's GCDiagnosis:
# 1 in ~20 Ctrl-Cs), here as the first chunk's files are counted done: Python discarded it ("Exception ignored in
# ..."), and the run went on to store every file, "completed", exit 0.
_CTRL_C_IN_A_GC_CALLBACK = """
import gc, os, threading
from tasks.progress import Progress
pressed = []
def ctrl_c(phase, info):
    if not pressed and threading.current_thread() is threading.main_thread():
        pressed.append(phase)
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the handler runs in here
advance = Progress.advance
def advance_collecting(self, files):
    advance(self, files)
    if not pressed:
        gc.callbacks.append(ctrl_c)
        gc.collect()
Progress.advance = advance_collecting
"""


def test_a_ctrl_c_raised_inside_a_gc_callback_still_stops_the_run_and_records_it_interrupted(
    cli_env: dict[str, str], voiced_manifest: Path, tmp_path: Path
) -> None:
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8"}
    interrupted = _run_cli_with(_CTRL_C_IN_A_GC_CALLBACK, ["analyze", str(voiced_manifest), "--json"], env, tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert "Exception ignored" not in interrupted.stderr and "Traceback" not in interrupted.stderr, interrupted.stderr[-3000:]
    assert interrupted.stderr.strip().splitlines()[-1] == "voxflow: interrupted; re-run the same command to finish the rest", interrupted.stderr[-3000:]
    run = env_db(env)["runs"].find_one({})
    assert run["status"] == "interrupted" and run["scored"] == env_db(env)["predictions"].count_documents({}) < N_VOICED, run  # it stopped


def test_a_ctrl_c_once_the_run_is_recorded_completed_leaves_it_completed_and_says_so(
    cli_env: dict[str, str], voiced_dir: Path, tmp_path: Path
) -> None:
    # Ctrl-C as the flow saves its summary artifact, right after the run's record says "completed": the command said
    # "interrupted; re-run the same command to finish the rest", which the record contradicted.
    prelude = (
        "import flows.analyze\n"
        "save = flows.analyze.create_markdown_artifact\n"
        "def ctrl_c_then_save(**kwargs):\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    return save(**kwargs)\n"
        "flows.analyze.create_markdown_artifact = ctrl_c_then_save\n"
    )
    stopped = _run_cli_with(prelude, ["analyze", str(sorted(voiced_dir.glob("voice00*.hea"))[0])], cli_env, tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert stopped.stderr.strip().splitlines()[-1] == "voxflow: interrupted after the command completed; nothing left to re-run"
    run = env_db(cli_env)["runs"].find_one({})
    assert (run["status"], run["scored"]) == ("completed", 1), run


def test_a_ctrl_c_as_a_drain_is_recorded_completed_leaves_it_completed_and_says_so(
    cli_env: dict[str, str], voiced_dir: Path, tmp_path: Path
) -> None:
    # Ctrl-C while the drain's record is written "completed" (taking effect once it is): the command said
    # "interrupted; re-run the same command to finish the rest", with nothing left in the queue to re-run.
    run_cli(["enqueue", str(sorted(voiced_dir.glob("voice00*.hea"))[0])], cli_env, timeout=60)
    prelude = (
        "from store.mongo import ResultStore\n"
        "finish_run = ResultStore.finish_run\n"
        "def finish_run_then_ctrl_c(self, run_id, fields):\n"
        "    finish_run(self, run_id, fields)\n"
        "    if fields.get('status') == 'completed':\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "ResultStore.finish_run = finish_run_then_ctrl_c\n"
    )
    stopped = _run_cli_with(prelude, ["drain"], cli_env, tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    assert stopped.stderr.strip().splitlines()[-1] == "voxflow: interrupted after the command completed; nothing left to re-run"
    run = env_db(cli_env)["runs"].find_one({})
    assert (run["status"], run["scored"], run["acked"]) == ("completed", 1, 1), run


def test_a_ctrl_c_while_workers_run_long_chunks_ends_the_command_at_once_and_quietly(cli_env: dict[str, str], tmp_path: Path) -> None:
    # A worker closing waits for its chunk; its nanny killed it after 4 s, warning "Worker process still alive after
    # 4.0 seconds, killing": 4.3 s from the Ctrl-C to the command's end.
    batch = tmp_path / "long"
    batch.mkdir()
    for index in range(4):  # one chunk of ~10 s: 4 clips of 110 s
        sf.write(batch / f"clip{index}.wav", synth_vowel(f0_hz=110 + 15 * index, duration_s=110, sr=16_000, jitter=0.01, hnr_db=20, seed=index), 16_000)
    proc = start_cli(["analyze", str(batch)], cli_env)
    stderr = proc.output_files[1]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while "Dask cluster ready" not in (stderr.seek(0) or stderr.read()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended or took too long before its cluster was ready"
        time.sleep(0.05)
    time.sleep(2.0)  # the chunk runs
    pressed = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    interrupted = finish(proc)
    took_s = time.monotonic() - pressed
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert interrupted.stderr.strip().splitlines()[-1] == "voxflow: interrupted; re-run the same command to finish the rest", interrupted.stderr[-3000:]
    assert "still alive" not in interrupted.stderr, interrupted.stderr[-3000:]
    assert [line for line in interrupted.stderr.splitlines() if re.search(r"\b(WARNING|ERROR)\b", line)] == [], interrupted.stderr[-3000:]
    assert took_s < 2.0, (took_s, interrupted.stderr[-3000:])
    assert env_db(cli_env)["runs"].find_one({})["status"] == "interrupted"


def _importing_forkserver(proc: subprocess.Popen, *, timeout_s: float = 60) -> psutil.Process:
    """The forkserver of ``proc`` once both would handle a SIGINT: the forkserver's Python has set its handler, or
    SIGINT is ignored there (before that, a SIGINT ends it without a word), and the command, which ignores SIGINT
    while it starts the forkserver, catches it again. The forkserver then imports the workers' preload for seconds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the command finished before its forkserver started"
        for child in psutil.Process(proc.pid).children():
            try:
                if is_forkserver(child) and sigint_action(child.pid) != "default" and sigint_action(proc.pid) == "caught":
                    return child
            except (psutil.Error, OSError):  # exited meanwhile
                continue
        time.sleep(0.01)
    raise AssertionError("no forkserver started under the analyze process")


def test_ctrl_c_while_the_workers_forkserver_starts_ends_with_one_line(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], cli_env)
    forkserver = _importing_forkserver(proc)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: it killed the forkserver mid-import, and with it the workers to come
    interrupted = finish(proc)
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr, interrupted.stderr[-3000:]
    assert interrupted.stderr.strip().splitlines()[-1] == "voxflow: interrupted; re-run the same command to finish the rest", interrupted.stderr[-3000:]
    assert psutil.wait_procs([forkserver], timeout=30)[1] == []  # it ignores SIGINT, and still ends with the command


def test_mongo_outage_mid_run_is_ridden_out(cli_env: dict[str, str], voiced_manifest: Path, test_settings: Settings) -> None:
    if os.environ.get("VOXFLOW_TEST_MONGO_URI"):
        pytest.skip("the outage is injected by stopping the embedded server")
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8"}
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    wait_for_predictions(env, proc, 16)
    assert services.stop_service(test_settings, "mongo")
    time.sleep(4.0)  # writes fail and back off meanwhile
    assert services.mongo_uri(test_settings) == env["VOXFLOW_MONGO_URI"]  # restarted on the same port
    summary = last_json(finish(proc))
    assert summary["status"] == "completed" and summary["scored"] == N_VOICED
    _assert_exactly_once(env)
    db = env_db(env)  # the rollups too: inserts retried across the outage counted each stored prediction once
    assert sum(bucket.get("predictions", 0) for bucket in db[COUNTS].find()) == N_VOICED
    assert sum(bucket.get(name, 0) for bucket in db[SCORES].find() for name in BIN_FIELDS) == N_VOICED


def test_redis_outage_mid_run_is_ridden_out(cli_env: dict[str, str], voiced_manifest: Path, test_settings: Settings) -> None:
    # Redis holds only the prediction cache and live metrics of an analyze: MongoDB is the record of truth.
    proxy, url = proxied_redis(services.redis_url(test_settings))
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8", "VOXFLOW_REDIS_URL": url}
    try:
        proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
        wait_for_predictions(env, proc, 16)
        proxy.close()  # gone, as a killed server: refused and cut
        wait_for_predictions(env, proc, 56)
        proxy.start()
        done = finish(proc)
    finally:
        proxy.release()
    summary = last_json(done)
    assert summary["status"] == "completed" and summary["scored"] == N_VOICED
    _assert_exactly_once(env)
    said = [line for line in done.stderr.splitlines() if "store.cache" in line]
    assert len(said) == 2 and "WARNING store.cache: Redis unreachable: " in said[0] and "Redis answers again" in said[1], done.stderr[-3000:]


def test_prefect_api_gone_mid_run_ends_with_one_line_after_storing_every_file(
    cli_env: dict[str, str], voiced_manifest: Path, prefect_api: str
) -> None:
    proxy = TcpProxy(("127.0.0.1", int(urllib.parse.urlsplit(prefect_api).port or 80))).start()
    url = f"http://127.0.0.1:{proxy.port}/api"
    # Prefect's client gives up at once, not after ~1 min of retries per request.
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8", "PREFECT_API_URL": url, "PREFECT_CLIENT_MAX_RETRIES": "0"}
    try:
        proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
        wait_for_predictions(env, proc, 16)
        proxy.close()
        gone = finish(proc)
        assert gone.returncode == 2, gone.stderr[-5000:]
        assert gone.stderr.strip().splitlines()[-1].startswith(f"voxflow: error: Prefect API unreachable ({url}): "), gone.stderr[-3000:]
        assert "Traceback" not in gone.stderr, gone.stderr[-5000:]
        assert gone.stderr.count("Could not update the Prefect progress artifact") <= 1, gone.stderr[-5000:]
        _assert_exactly_once(env)  # scoring went on without the API
        run = env_db(env)["runs"].find_one()
        assert run["status"] in ("completed", "failed") and run["scored"] == N_VOICED, run

        proxy.start()
        summary = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
        assert summary["status"] == "completed" and summary["scored"] == 0 and summary["skipped"] == N_VOICED
    finally:
        proxy.release()


def test_existing_dask_cluster_by_address(cli_env: dict[str, str], voiced_manifest: Path, tmp_path: Path, redis_client: redis.Redis) -> None:
    with dask_processes(tmp_path, workers=2) as cluster:
        # This client's own bounds (VOXFLOW_DASK_MAX_WORKERS, by default its CPU count) are not the cluster's.
        env = {**cli_env, "VOXFLOW_DASK_ADDRESS": cluster.address, "VOXFLOW_CHUNK_SIZE": "16", "VOXFLOW_DASK_MAX_WORKERS": "2"}
        summary = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
        assert summary["scored"] == N_VOICED and summary["workers_max_seen"] == 2, summary
        _assert_exactly_once(env)
    assert cluster.scheduler.returncode is not None
    # The run found the cluster's workers there (it was recorded as their "cluster start", from none), and its
    # advice with 208 files waiting was to add workers, for the cluster's operator (it was to hold at the client's maximum).
    first = env_db(env)["scaling_events"].find_one({"run_id": summary["run_id"]}, sort=[("time", 1)])
    assert (first["workers_before"], first["workers_after"], first["reason"]) == (2, 2, "attached"), first
    assert first["recommendation"]["action"] == "scale_out", first
    assert first["recommendation"]["reason"].endswith(f"(advice for the operator of the Dask cluster at {cluster.address}: voxflow does not scale it)")
    _, sample = redis_client.xrange("voxflow:metrics:workers", count=1)[0]
    assert (sample["workers"], sample["action"]) == ("2", "scale_out"), sample


def test_an_existing_clusters_work_is_sized_for_its_own_workers_not_the_clients_cpus(
    cli_env: dict[str, str], voiced_dir: Path, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # A client whose own maximum (VOXFLOW_DASK_MAX_WORKERS, by default its CPU count) was 1 cut 48 files into 5 chunks for one
    # worker (16, 16, 8, 4, 4) and kept at most max(4, 3 x 1) = 4 in flight: on a 16-worker cluster, most of it idle.
    manifest = tmp_path / "some.csv"
    manifest.write_text("path\n" + "".join(f"{path}\n" for path in sorted(voiced_dir.glob("voice*.hea"))[:48]))
    with dask_processes(tmp_path, workers=4) as cluster:
        env = {**cli_env, "VOXFLOW_DASK_ADDRESS": cluster.address, "VOXFLOW_CHUNK_SIZE": "16", "VOXFLOW_DASK_MAX_WORKERS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
        done = run_cli(["analyze", str(manifest), "--json"], env)
        summary = last_json(done)
    assert summary["scored"] == 48 and summary["workers_max_seen"] == 4, summary
    assert "up to 12 in flight: sized for the 4 worker threads it has now (followed as workers join or leave)" in done.stderr, done.stderr
    assert summary["chunks"] == 11, summary  # cut for 4 workers: 6, 6, 5, 4, 4, 4, 4, 4, 4, 4, 3
    # The dashboard's samples of the run's tasks (processing on a worker or queued): every chunk at once, from the first.
    samples = [fields for _, fields in redis_client.xrange("voxflow:metrics:workers") if fields["run_id"] == summary["run_id"]]
    assert max(int(sample["processing"]) + int(sample["queued"]) for sample in samples) == 11, samples
    chunk_workers = {fields["worker"] for _, fields in redis_client.xrange("voxflow:metrics:throughput") if fields["run_id"] == summary["run_id"]}
    assert len(chunk_workers) == 4, chunk_workers
    # The client's bounds are not the cluster's: the run records none.
    run = env_db(env)["runs"].find_one({"run_id": summary["run_id"]})
    assert (run["workers_min"], run["workers_max"]) == (None, None), run


def test_a_scheduler_stopped_mid_run_ends_the_run_with_one_line_and_a_rerun_finishes_the_rest(
    cli_env: dict[str, str], voiced_manifest: Path, tmp_path: Path
) -> None:
    # A stopped scheduler (SIGSTOP: the connection stays open, nothing answers) left the command waiting forever, silent.
    with dask_processes(tmp_path, workers=2) as cluster:
        env = {**cli_env, "VOXFLOW_DASK_ADDRESS": cluster.address, "VOXFLOW_CHUNK_SIZE": "8", "VOXFLOW_DASK_SCHEDULER_TIMEOUT_S": "4"}
        proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
        try:
            wait_for_predictions(env, proc, at_least=1)
            cluster.scheduler.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            failed = finish(proc, timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert time.monotonic() - stopped < 20
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
        lines = failed.stderr.splitlines()
        assert lines[-1] == f"voxflow: error: Dask scheduler at {cluster.address} stopped answering mid-run (no answer for 4 s): re-run to finish the rest", failed.stderr
        assert [line for line in lines if "WARNING" in line and f"The Dask scheduler at {cluster.address} has not answered for" in line], failed.stderr
        runs = env_db(env)["runs"]
        [run] = runs.find()
        assert run["status"] == "failed" and "stopped answering mid-run" in run["error"], run
        stored = env_db(env)["predictions"].count_documents({})
        assert 0 < stored < N_VOICED

        cluster.scheduler.send_signal(signal.SIGCONT)
        summary = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
        assert summary["scored"] == N_VOICED - stored, summary
        _assert_exactly_once(env)
