"""The front door: help that tells a user what to do, and services status without secrets."""

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from distributed import Client
from distributed.utils import LoopRunner, sync
import redis
from pymongo.database import Database

from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL
from store.feature_store import FeatureStore
from store.mongo import ResultStore
from store.cache import connect_redis
from store.queue import FileQueue
from tasks.cluster import with_handed_cluster
from tests.helpers import voiced_record
from tests.voxflow_cli import REPO, assert_one_line_error, bare_env, last_json, run_cli
from voxflow.cli import (
    BACKUP_COLUMNS,
    CtrlCNotACrash,
    PREDICTED_LABELS,
    RESULT_COLUMNS,
    RUN_COLUMNS,
    _print_records,
    build_parser,
    cmd_analyze,
    cmd_labels,
    cmd_queue,
    cmd_quarantine,
    cmd_results,
    cmd_voiced_manifest,
)
from voxflow import services
from voxflow.errors import SourceError, VoxflowError
from voxflow.settings import Settings


def test_help_lists_every_command_and_source_forms(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("analyze", "results", "quarantine", "runs", "train", "services", "counts"):
        assert command in text
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "--help"])
    text = capsys.readouterr().out
    assert "folder (recursive)" in text and "manifest" in text and "--json" in text


def test_help_says_where_settings_are_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "VOXFLOW_* environment variables; README.md, section Configuration" in " ".join(capsys.readouterr().out.split())


def test_every_argument_has_help_that_gives_its_default() -> None:
    parser = build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        for action in command._actions:
            assert action.help, f"voxflow {name} {action.dest}: no help"
            if action.default not in (None, "", argparse.SUPPRESS) and action.default is not False:  # 0 == False
                assert "%(default)s" in action.help, f"voxflow {name} {action.dest}: help does not give the default {action.default!r}"


def test_services_status_redacts_secrets(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "VOXFLOW_REDIS_URL": "redis://:hunter2@127.0.0.1:6399/0"}
    rows = last_json(run_cli(["services", "status", "--json"], env, timeout=60))
    by_name = {row["name"]: row for row in rows}
    assert by_name["redis"]["mode"] == "external" and "hunter2" not in by_name["redis"]["address"]
    assert "***" in by_name["redis"]["address"] and by_name["redis"]["state"] == "unreachable"
    assert by_name["mongo"]["state"] == "running"


def test_a_flow_that_fails_on_a_refused_store_prints_no_traceback(cli_env: dict[str, str]) -> None:
    scheme, rest = cli_env["VOXFLOW_REDIS_URL"].split("://", 1)
    env = {**cli_env, "VOXFLOW_REDIS_URL": f"{scheme}://bob:hunter2@{rest}"}  # a user the server does not have
    proc = run_cli(["drain"], env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    # The drain's lock is its first Redis command.
    assert proc.stderr.splitlines()[-1].startswith("voxflow: error: Redis refused the configured user or password (lock drain): ") and "hunter2" not in proc.stderr


@pytest.mark.timeout(180)
def test_analyze_hands_the_flow_the_cluster_it_started_ahead(
    test_settings: Settings, voiced_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import flows.analyze

    seen: dict[str, object] = {}

    def flow_in_place(*, source: str, model_version: str | None, chunk_size: int | None) -> dict:
        # Stands in for the Prefect flow (tested end to end in tests/flows): what matters here is the address it gets.
        dask_address = with_handed_cluster(settings).dask_address
        with Client(dask_address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
            seen["workers"] = len(client.scheduler_info()["workers"])
        seen["address"] = dask_address
        return {"source": source, "status": "completed"}

    monkeypatch.setattr(flows.analyze, "analyze_batch", flow_in_place)
    settings = test_settings.model_copy(update={"dask_min_workers": 1, "dask_max_workers": 1})
    assert cmd_analyze(build_parser().parse_args(["analyze", str(voiced_dir), "--json"]), settings) == 0
    assert str(seen["address"]).startswith("tcp://127.0.0.1:") and seen["workers"] == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "completed"
    with pytest.raises(OSError):  # the command closed its cluster
        Client(str(seen["address"]), timeout="2s")


def test_the_cli_imports_no_heavy_library_before_a_command_starts() -> None:
    # analyze starts its workers' forkserver first: every import ahead of it delays the workers (pandas ~0.3 s, distributed ~0.4 s)
    code = "import sys, voxflow.cli; print([name for name in ('pandas', 'distributed', 'dask', 'prefect') if name in sys.modules])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_prefect_telemetry_is_off_unless_asked_for() -> None:
    code = "import os, voxflow.cli, prefect; print(os.environ.get('DO_NOT_TRACK'))"
    env = {k: v for k, v in os.environ.items() if k != "DO_NOT_TRACK"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()[-1] == "1"
    kept = subprocess.run([sys.executable, "-c", code], env={**env, "DO_NOT_TRACK": "0"}, capture_output=True, text=True, check=True)
    assert kept.stdout.split()[-1] == "0"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VOXFLOW_LOG_LEVEL", "loud", "bad setting VOXFLOW_LOG_LEVEL: Input should be 'DEBUG'"),
        ("VOXFLOW_DASK_CLUSTER_KWARGS", "notjson", "bad setting VOXFLOW_DASK_CLUSTER_KWARGS: not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        ("VOXFLOW_REDIS_URL", "http://x", "bad setting VOXFLOW_REDIS_URL: not a valid Redis URL: Redis URL must specify"),
        ("VOXFLOW_REDIS_URL", "redis://:xq7zz9@host:abc", "not a valid Redis URL: Port could not be cast to integer value as 'abc'"),
        ("VOXFLOW_REDIS_URL", "redis://:xq7/zz9@host:6379/0", "not a valid Redis URL: percent-escape"),
        ("VOXFLOW_REDIS_URL", "redis://:xq7zz9@host:6379/abc", "not a valid Redis URL: its path names database 'abc', not a number"),
        ("VOXFLOW_DASHBOARD_REDIS_URL", "redis://:xq7#zz9@host/0", "bad setting VOXFLOW_DASHBOARD_REDIS_URL: not a valid Redis URL"),
        ("VOXFLOW_MONGO_URI", "mongodb://u:xq7zz9@host:abc/", "bad setting VOXFLOW_MONGO_URI: not a valid MongoDB URI: Port contains"),
        ("VOXFLOW_MONGO_URI", "mongodb://u:xq7@zz9@host/", "not a valid MongoDB URI: percent-escape"),
        ("VOXFLOW_MONGO_URI", "redis://host/", "not a valid MongoDB URI: Invalid URI scheme"),
        ("PREFECT_API_URL", "http://u:xq7/zz9@host:4200/api", "bad setting PREFECT_API_URL: must be an http:// or https:// URL"),
        ("PREFECT_API_URL", "localhost:4200/api", "bad setting PREFECT_API_URL"),
        ("VOXFLOW_QUEUE_CLAIM_IDLE_S", "inf", "bad setting VOXFLOW_QUEUE_CLAIM_IDLE_S: Input should be a finite number"),
        ("VOXFLOW_QUEUE_CLAIM_IDLE_S", "1e20", "bad setting VOXFLOW_QUEUE_CLAIM_IDLE_S: Input should be less than or equal to 2592000"),
        ("VOXFLOW_MIN_DURATION_S", "500", "bad settings: VOXFLOW_MAX_DURATION_S (120.0) must be greater than VOXFLOW_MIN_DURATION_S (500.0)"),
    ],
)
def test_a_bad_setting_is_one_line_without_its_secret(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    proc = run_cli(["services", "status", "--json"], bare_env(tmp_path, **{variable: value}), timeout=60)
    assert_one_line_error(proc, expected)
    assert "xq7" not in proc.stderr and "zz9" not in proc.stderr


def test_log_level_in_any_case_and_max_workers_from_the_minimum(tmp_path: Path) -> None:
    env = bare_env(tmp_path, VOXFLOW_LOG_LEVEL="debug", VOXFLOW_DASK_MIN_WORKERS=str((os.cpu_count() or 1) + 1))
    rows = last_json(run_cli(["services", "status", "--json"], env, timeout=60))
    assert [row["state"] for row in rows] == ["stopped"] * 3


def test_a_file_error_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(["demo-corpus", "/proc/voxflow-nope", "-n", "1"], bare_env(tmp_path), timeout=60)
    assert_one_line_error(proc, "/proc/voxflow-nope")


def test_a_home_that_cannot_be_made_is_named_as_the_setting() -> None:
    proc = run_cli(["runs"], bare_env(Path("/proc/voxflow-nope")), timeout=60)
    assert_one_line_error(proc, "VOXFLOW_HOME /proc/voxflow-nope is not usable: No such file or directory: /proc/voxflow-nope")


def test_a_users_own_path_inside_the_home_is_not_blamed_on_the_home(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    proc = run_cli(["demo-corpus", str(tmp_path / "notes.txt" / "corpus"), "-n", "1"], bare_env(tmp_path), timeout=60)
    assert_one_line_error(proc, "Not a directory")
    assert "VOXFLOW_HOME" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", ""], ["enqueue", "", "."], ["train", ""], ["train", "tests", "--out", ""], ["evaluate", ""], ["labels", "import", ""],
        ["labels", "import", "--voiced", ""], ["voiced-manifest", ""], ["voiced-manifest", "tests", "-o", ""], ["demo-corpus", ""],
    ],
)
def test_an_empty_path_is_refused_in_one_line_before_anything_runs(tmp_path: Path, argv: list[str]) -> None:
    # Path('') is '.': 'analyze ""' had analysed the folder it ran in, and stored "" as its source.
    proc = run_cli(argv, bare_env(tmp_path), timeout=60)
    assert_one_line_error(proc, "is empty (''): name a file or folder")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["models", "rollback", "xgb-fv3-0123456789"], "models rollback takes no VERSION ('xgb-fv3-0123456789')"),
        (["models", "list", "xgb-fv3-0123456789"], "models list takes no VERSION"),
        (["models", "promote"], "models promote needs a VERSION"),
        (["backup", "--limit", "3"], "--limit goes with --list (backup alone takes a backup)"),
    ],
)
def test_an_argument_its_command_would_ignore_is_refused(tmp_path: Path, argv: list[str], expected: str) -> None:
    # The rollback ran without its VERSION, and 'backup --limit 3' took a backup.
    proc = run_cli(argv, bare_env(tmp_path), timeout=60)
    assert_one_line_error(proc, expected)
    assert not (tmp_path / "services").exists()  # refused before any server started


@pytest.mark.parametrize("argv", [["analyze", "ODD"], ["enqueue", "ODD"], ["demo-corpus", "ODD"], ["labels", "import", "ODD"], ["results", "-o", "ODD.csv"]])
def test_a_path_that_is_not_utf8_is_refused_in_one_line_before_anything_runs(tmp_path: Path, argv: list[str]) -> None:
    # Each crashed with a UnicodeEncodeError traceback (Prefect's parameters, a print); demo-corpus left a partial corpus.
    odd = tmp_path / os.fsdecode(b"clips\xff")
    odd.mkdir()
    proc = run_cli([str(odd) + arg.removeprefix("ODD") if arg.startswith("ODD") else arg for arg in argv], bare_env(tmp_path), timeout=60)
    shown = f"{tmp_path}/clips\\xff"
    if "-o" in argv:
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(f"file {shown}.csv is not valid UTF-8: rename it, or name it in UTF-8")
    else:
        assert_one_line_error(proc, f"{shown} is not valid UTF-8: rename it, or name it in UTF-8")
    assert list(odd.iterdir()) == []


@pytest.mark.parametrize(
    "argv", [["models", "list"], ["models", "promote", "xgb-fv3-0123456789"], ["labels", "import", "labels.csv"], ["counts", "rebuild"]]
)
def test_an_unreachable_mongodb_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(f"sha256,label\n{'ab' * 32},1\n")
    argv = [str(labels) if arg == labels.name else arg for arg in argv]
    proc = run_cli(argv, bare_env(tmp_path, VOXFLOW_MONGO_URI="mongodb://127.0.0.1:1/"), timeout=60)
    assert_one_line_error(proc, "MongoDB unreachable (database voxflow): 127.0.0.1:1: ")


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ("bad/pool", "--pool 'bad/pool' is not a Prefect work pool name: it may not hold '/'"),
        ("Prefect-pool", "--pool 'Prefect-pool' is not a Prefect work pool name: Prefect keeps names that start with 'prefect' for itself"),
    ],
)
def test_a_worker_pool_prefect_would_refuse_is_one_line_before_prefect_is_reached(tmp_path: Path, pool: str, expected: str) -> None:
    # VOXFLOW_WORK_POOL was checked against Prefect's rules, --pool was not: the worker started and polled it.
    proc = run_cli(["worker", "--pool", pool, "--run-once"], bare_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api"), timeout=60)
    assert_one_line_error(proc, expected)


def _with_user(test_settings: Settings, home: Path) -> tuple[str, dict[str, str]]:
    """The session's MongoDB host:port, and a CLI environment whose VOXFLOW_MONGO_URI logs a user in there."""
    uri = services.mongo_uri(test_settings)
    return uri.removeprefix("mongodb://").rstrip("/"), bare_env(home, VOXFLOW_MONGO_URI=uri.replace("mongodb://", "mongodb://voxflow:s3cretPW@"))


@pytest.mark.skipif("VOXFLOW_TEST_MONGO_URI" in os.environ, reason="the embedded nx-27017 has no auth")
@pytest.mark.parametrize("argv", [["models", "list"], ["results"]])
def test_a_user_for_a_mongodb_without_auth_is_one_line_without_its_password(test_settings: Settings, tmp_path: Path, argv: list[str]) -> None:
    # pymongo's login read the answer of a server without users (nx-27017) as a KeyError: 'payload' traceback.
    server, env = _with_user(test_settings, tmp_path)
    proc = run_cli(argv, env, timeout=60)
    assert_one_line_error(proc, f"MongoDB at {server} refused authentication (the server may not support auth): ")
    assert "s3cretPW" not in proc.stderr and "remove the user and password from the MongoDB URI" in proc.stderr


@pytest.mark.skipif("VOXFLOW_TEST_MONGO_URI" in os.environ, reason="the embedded nx-27017 has no auth")
def test_services_shows_a_mongodb_that_cannot_log_the_user_in_as_a_refused_user(test_settings: Settings, tmp_path: Path) -> None:
    # Not answering, as for a refused user: the table had crashed with the same traceback.
    listed = last_json(run_cli(["services", "--json"], _with_user(test_settings, tmp_path)[1], timeout=60))
    assert next(row for row in listed if row["name"] == "mongo")["state"] == "unreachable"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["analyze", "x", "--chunk-size", "-1"], "argument --chunk-size: must be an integer from 1 to 4096, not '-1'"),
        (["analyze", "x", "--chunk-size", "0"], "argument --chunk-size: must be an integer from 1 to 4096, not '0'"),
        # Within the bounds of the settings they stand in for, which the flows check: 99999 ended in a traceback.
        (["analyze", "x", "--chunk-size", "99999"], "argument --chunk-size: must be an integer from 1 to 4096, not '99999'"),
        (["drain", "--chunk-size", "4097"], "argument --chunk-size: must be an integer from 1 to 4096, not '4097'"),
        (["drain", "--batch-size", "-1"], "argument --batch-size: must be an integer from 1 to 10000"),
        (["drain", "--batch-size", "10001"], "argument --batch-size: must be an integer from 1 to 10000, not '10001'"),
        (["drain", "--chunk-size", "two"], "argument --chunk-size: must be an integer from 1 to 4096, not 'two'"),
        (["drain", "--linger", "-1"], "argument --linger: must be a number of at least 0, not '-1'"),
        (["drain", "--linger", "inf"], "argument --linger: must be a number of at least 0, not 'inf'"),
        (["results", "--limit", "0"], "argument --limit: must be an integer of at least 1"),
        (["results", "--min-score", "nan"], "argument --min-score: must be a number from 0 to 1, not 'nan'"),
        (["results", "-o", "run.xlsx"], "argument -o/--output: name a .csv or .parquet file, not 'run.xlsx'"),
        (["quarantine", "--json", "-o", "q.csv"], "argument -o/--output: not allowed with argument --json"),
        (["backup", "--list", "--limit", "-5"], "argument --limit: must be an integer of at least 1"),
        (["models", "list", "--limit", "0"], "argument --limit: must be an integer of at least 1"),
        (["demo-corpus", "x", "-n", "0"], "argument -n: must be an integer of at least 1"),
        (["dashboard", "--port", "70000"], "argument --port: must be an integer from 0 to 65535, not '70000'"),
        (["results", "--label", "sick"], "argument --label: invalid choice: 'sick' (choose from 'healthy', 'pathological')"),
    ],
)
def test_counts_and_bounds_of_options_are_checked(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_drain_bounds_pass_through() -> None:
    args = build_parser().parse_args(["drain", "--chunk-size", "5", "--batch-size", "7", "--linger", "0.5"])
    assert (args.chunk_size, args.batch_size, args.linger) == (5, 7, 0.5)


def test_restore_help_names_the_real_scratch_database(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.backup import scratch_database

    with pytest.raises(SystemExit):
        build_parser().parse_args(["restore", "--help"])
    assert scratch_database("voxflow", "2026-11-27T020000Z", "restore") in capsys.readouterr().out


def test_run_counts_print_as_whole_numbers_beside_runs_without_them(capsys: pytest.CaptureFixture[str]) -> None:
    analyze = {"run_id": "a1", "status": "completed", "seen": 45, "scored": 40, "skipped": 0, "quarantined": 5}
    drain = {"run_id": "d1", "status": "completed", "acked": 11, "scored": 6, "skipped": 0, "duplicates": 3, "quarantined": 2}
    _print_records([analyze, drain, {"run_id": "r1", "status": "running"}], RUN_COLUMNS, as_json=False, empty="")
    header, *rows = capsys.readouterr().out.splitlines()
    table = {row.split()[0]: dict(zip(header.split(), row.split())) for row in rows}
    assert table["a1"] == {"run_id": "a1", "status": "completed", "seen": "45", "acked": "-", "scored": "40", "skipped": "0", "duplicates": "-", "quarantined": "5"}
    assert table["d1"]["acked"] == "11" and table["d1"]["seen"] == "-" and table["r1"]["scored"] == "-"


def test_runs_list_why_a_run_failed_or_was_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the table had no error column: a run that failed on its source showed only `failed` and a source of `-`.
    failed = {"run_id": "f1", "status": "failed", "source": "", "error": "SourceError: source not found: /data/nope"}
    interrupted = {"run_id": "i1", "status": "interrupted", "source": "/data/b", "error": "SIGTERM before the run finished; a re-run finishes the rest"}
    _print_records([failed, interrupted, {"run_id": "c1", "status": "completed", "source": "/data/c"}], RUN_COLUMNS, as_json=False, empty="")
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[-2:] == ["source", "error"]
    assert [row.split(maxsplit=3)[3] for row in rows] == [
        "SourceError: source not found: /data/nope", "SIGTERM before the run finished; a re-run finishes the rest", "-",
    ]


def printed_rows(capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """The cells of each row a listing printed, below its header."""
    return [row.split() for row in capsys.readouterr().out.splitlines()[1:]]


def test_listings_print_missing_values_as_a_dash_pids_as_whole_numbers_and_lists_joined(capsys: pytest.CaptureFixture[str]) -> None:
    services = [{"name": "redis", "address": "", "pid": None}, {"name": "mongo", "address": "mongodb://127.0.0.1:27017/", "pid": 6912}]
    _print_records(services, ("name", "address", "pid"), as_json=False, empty="")
    assert printed_rows(capsys) == [["redis", "-", "-"], ["mongo", "mongodb://127.0.0.1:27017/", "6912"]]
    predictions = [
        {"path": "a.wav", "score": 0.25, "label": "healthy", "reference_label": None, "quality_flags": []},
        {"path": "b.wav", "score": 0.75, "label": "pathological", "reference_label": "healthy", "quality_flags": ["low_snr", "short"]},
    ]
    _print_records(predictions, RESULT_COLUMNS, as_json=False, empty="")
    assert printed_rows(capsys) == [["a.wav", "0.25", "healthy", "-", "-"], ["b.wav", "0.75", "pathological", "healthy", "low_snr,short"]]
    backups = [{"backup_id": "b1", "status": "verified", "verified": True, "error": None, "prune_error": None}]
    _print_records(backups, BACKUP_COLUMNS, as_json=False, empty="")
    assert printed_rows(capsys) == [["b1", "verified", "True", "-", "-"]]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["analyze", "x"], "voxflow: interrupted; re-run the same command to finish the rest"),
        (["drain"], "voxflow: interrupted; re-run the same command to finish the rest"),
        (["dashboard"], "voxflow: interrupted"),
        (["backup"], "voxflow: interrupted"),
    ],
)
def test_only_commands_that_skip_stored_work_suggest_a_re_run_when_interrupted(tmp_path: Path, argv: list[str], expected: str) -> None:
    handler = f"cmd_{argv[0]}"
    code = (
        "import sys, voxflow.cli as cli\n"
        "def interrupted(args, settings): raise KeyboardInterrupt\n"
        f"cli.{handler} = interrupted\n"  # what Ctrl-C does while the command runs
        f"sys.exit(cli.main({argv!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=bare_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, expected + "\n")


def test_ctrl_c_after_the_command_ended_exits_at_once_without_a_traceback(tmp_path: Path) -> None:
    # After the run's summary, the interpreter still joins threads and runs atexit handlers (~1 s): a Ctrl-C
    # there printed a KeyboardInterrupt traceback from threading._shutdown, or killed the process by SIGINT.
    code = (
        "import atexit, sys, time, voxflow.cli as cli\n"
        "def slow_shutdown(): print('shutting down', flush=True); time.sleep(60)\n"
        "def done(args, settings): atexit.register(slow_shutdown); return 0\n"
        "cli.cmd_runs = done\n"
        "sys.exit(cli.main(['runs']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=bare_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "shutting down\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, stderr) == (130, "")


# Holds up the first import of $SLOW_IMPORT for $SLOW_IMPORT_S seconds and says so on stdout, before and after:
# a Ctrl-C sent at the first line lands in that import.
_SLOW_IMPORT_HOOK = """
import os, sys, time

class SlowImport:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SLOW_IMPORT"]:
            sys.meta_path.remove(self)
            print("importing", name, flush=True)
            time.sleep(float(os.environ["SLOW_IMPORT_S"]))
            print("imported", name, flush=True)
        return None

sys.meta_path.insert(0, SlowImport())
"""


def _slow_import_env(tmp_path: Path, module: str, seconds: float) -> dict[str, str]:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SLOW_IMPORT_HOOK)
    return bare_env(tmp_path, PYTHONPATH=os.pathsep.join([str(hooks), str(REPO)]), SLOW_IMPORT=module, SLOW_IMPORT_S=str(seconds))


def _interrupted_while_importing(argv: list[str], env: dict[str, str], module: str) -> tuple[int, str, str]:
    """Run ``argv`` (with :func:`_slow_import_env`'s hook), Ctrl-C its process group once ``module`` starts to
    import; its exit status, and its stdout after the hook's first line and stderr."""
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == f"importing {module}\n"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stdout, stderr


# What pip writes as the `voxflow` console script (its entry point is voxflow.cli:main).
_CONSOLE_SCRIPT = """import sys
from voxflow.cli import main
if __name__ == '__main__':
    sys.exit(main())
"""


@pytest.mark.parametrize("entry", ["python -m voxflow.cli", "console script"])
def test_ctrl_c_while_the_command_imports_its_modules_ends_with_one_line(tmp_path: Path, entry: str) -> None:
    # Before main() ran, Python's own handler printed a KeyboardInterrupt traceback from wherever the imports were
    # (pydantic's dataclasses, typing), and the process died by SIGINT. pydantic_settings: voxflow.cli's, after pydantic's.
    env = _slow_import_env(tmp_path, "pydantic_settings", 60)
    script = tmp_path / "voxflow"
    script.write_text(_CONSOLE_SCRIPT)
    command = [sys.executable, "-m", "voxflow.cli"] if entry.startswith("python") else [sys.executable, str(script)]
    returncode, _, stderr = _interrupted_while_importing([*command, "runs"], env, "pydantic_settings")
    assert (returncode, stderr) == (130, "voxflow: interrupted\n")


def test_ctrl_c_while_a_command_imports_its_flow_takes_effect_once_the_import_is_done(tmp_path: Path) -> None:
    # Raised inside Prefect's imports, a KeyboardInterrupt was swallowed by pydantic-core ("Exception ignored in:
    # 'SecretStr'", and the drain went on to the end) or left CPython's import lock held (the drain hung, its
    # Prefect threads waiting to import).
    env = _slow_import_env(tmp_path, "flows.drain", 1)
    returncode, stdout, stderr = _interrupted_while_importing([sys.executable, "-m", "voxflow.cli", "drain"], env, "flows.drain")
    assert stdout == "imported flows.drain\n"
    assert (returncode, stderr) == (130, "voxflow: interrupted; re-run the same command to finish the rest\n")


# The command's handler, run as `python -m` (where CPython's exit status depends on how a KeyboardInterrupt went), each
# interrupted in another way: `signal.raise_signal` is what a terminal's Ctrl-C does to the process at that point.
_INTERRUPTED_BY = {
    "plain": "signal.raise_signal(signal.SIGINT)",
    # pydantic-core calls a serializer and turns what it raises into a PydanticSerializationError: what Prefect's import
    # did (its settings' model_dump) to a Ctrl-C ~1 s into drain or analyze, with its traceback and exit 1.
    "inside a pydantic serializer": (
        "from pydantic import BaseModel, field_serializer\n"
        "    class Dumped(BaseModel):\n"
        "        value: int = 1\n"
        "        @field_serializer('value')\n"
        "        def ctrl_c(self, value): signal.raise_signal(signal.SIGINT)\n"
        "    Dumped().model_dump()"
    ),
    # Code run from a string (dataclasses and pydantic build classes with exec while modules import): CPython then ended
    # the process by SIGINT after the command printed its line and exited with 130 (7 of 160 Ctrl-Cs 0.6-1.05 s into drain).
    "inside exec'd code": "exec('import signal; signal.raise_signal(signal.SIGINT)')",
    # Python discards an exception raised while a gc callback or a __del__ runs ("Exception ignored in ..."): a Ctrl-C
    # raised there (distributed's GCDiagnosis callback, 1 in ~20 Ctrl-Cs into analyze) was lost, and the run went on to
    # completion and exit 0.
    "inside a gc callback": (
        "import gc\n"
        "    def ctrl_c(phase, info):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "        gc.callbacks.remove(ctrl_c)\n"
        "    gc.callbacks.append(ctrl_c)\n"
        "    gc.collect()\n"
        "    import time\n"
        "    for _ in range(500): time.sleep(0.01)  # as a run waits for its chunks\n"
        "    print('went on')"
    ),
    "inside a weakref callback": (
        "import weakref\n"
        "    class Dying: pass\n"
        "    dying = Dying()\n"
        "    ref = weakref.ref(dying, lambda ref: signal.raise_signal(signal.SIGINT))\n"
        "    del dying\n"
        "    import time\n"
        "    for _ in range(500): time.sleep(0.01)  # as a run waits for its chunks\n"
        "    print('went on')"
    ),
    "inside a __del__": (
        "class Dying:\n"
        "        def __del__(self): signal.raise_signal(signal.SIGINT)\n"
        "    Dying()\n"
        "    import time\n"
        "    for _ in range(500): time.sleep(0.01)  # as a run waits for its chunks\n"
        "    print('went on')"
    ),
}


def _run_as_command(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess:
    """Run ``source`` (which replaces a command of voxflow.cli, then calls its main) as module ``name``, as voxflow runs."""
    (tmp_path / f"{name}.py").write_text(source)
    env = bare_env(tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    return subprocess.run([sys.executable, "-m", name], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", list(_INTERRUPTED_BY))
def test_a_ctrl_c_that_others_catch_or_wrap_still_ends_the_command_with_one_line_and_130(tmp_path: Path, how: str) -> None:
    proc = _run_as_command(tmp_path, "interrupted_command", (
        "import signal, sys\n"
        "import voxflow.cli as cli\n"
        "def interrupted(args, settings):\n"
        f"    {_INTERRUPTED_BY[how]}\n"
        "    return 0\n"
        "cli.cmd_runs = interrupted\n"
        "sys.exit(cli.main(['runs']))\n"
    ))
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "voxflow: interrupted\n", "")


def test_a_ctrl_c_the_command_swallows_still_ends_it_with_130_saying_it_came_after_the_command_completed(tmp_path: Path) -> None:
    # Heard of by the handler, lost on the way (a library's `except BaseException: pass`): the command did all its work.
    proc = _run_as_command(tmp_path, "swallowing_command", (
        "import signal, sys\n"
        "import voxflow.cli as cli\n"
        "def swallowing(args, settings):\n"
        "    try:\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
        "    return 0\n"
        "cli.cmd_runs = swallowing\n"
        "sys.exit(cli.main(['runs']))\n"
    ))
    assert (proc.returncode, proc.stderr) == (130, "voxflow: interrupted after the command completed\n")


@pytest.mark.parametrize("log_worker_ran", [True, False])
def test_a_prefect_api_lost_mid_run_is_said_on_a_line_of_its_own(tmp_path: Path, log_worker_ran: bool) -> None:
    # Prefect's log worker says each batch it could not send without ending the line; seen once glued to the last line.
    proc = _run_as_command(tmp_path, "lost_api_command", (
        "import sys\n"
        "from prefect.logging.handlers import APILogWorker\n"
        "import voxflow.cli as cli\n"
        "from voxflow.errors import PrefectUnreachable\n"
        "def lost(args, settings):\n"
        f"    if {log_worker_ran}:\n"
        "        APILogWorker._instances[0] = object.__new__(APILogWorker)  # a flow run's, still registered\n"
        "        sys.stderr.write('--- Error logging to API ---\\nAll connection attempts failed')\n"
        "    raise PrefectUnreachable('Prefect API unreachable (http://127.0.0.1:9/api): ConnectError: refused')\n"
        "cli.cmd_runs = lost\n"
        "code = cli.main(['runs'])\n"
        "APILogWorker._instances.clear()\n"
        "sys.exit(code)\n"
    ))
    said = "voxflow: error: Prefect API unreachable (http://127.0.0.1:9/api): ConnectError: refused\n"
    assert (proc.returncode, proc.stderr) == (2, "--- Error logging to API ---\nAll connection attempts failed\n" + said if log_worker_ran else said)


def test_label_filter_reads_the_stored_labels_in_any_case() -> None:
    assert PREDICTED_LABELS == (NEGATIVE_LABEL, POSITIVE_LABEL)
    assert build_parser().parse_args(["results", "--label", "Pathological"]).label == "pathological"


def test_run_filter_takes_a_unique_start_of_a_run_id_and_refuses_an_unknown_one(
    test_settings: Settings, mongo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultStore(mongo_db)
    for run_id in ("6bf4d0bc-aa", "6bf4d0bc-aa-2", "71c0ffee-bb"):
        store.start_run({"run_id": run_id, "status": "completed"})
        store.insert_predictions([{"audio_sha256": run_id.ljust(64, "0"), "model_version": "m1", "run_id": run_id, "score": 0.5, "label": "healthy"}])
    settings = test_settings.model_copy(update={"mongo_db": mongo_db.name})

    def listed(*argv: str) -> list[str]:
        assert cmd_results(build_parser().parse_args(["results", *argv, "--json"]), settings) == 0
        return [record["run_id"] for record in json.loads(capsys.readouterr().out)]

    assert listed("--run", "71c0") == ["71c0ffee-bb"]
    assert listed("--run", "6bf4d0bc-aa") == ["6bf4d0bc-aa"]  # a whole id, though a longer one starts with it
    with pytest.raises(VoxflowError, match=r"more than one run id starts with 6bf4 \(6bf4d0bc-aa, 6bf4d0bc-aa-2\)"):
        listed("--run", "6bf4")
    for command, handler in (("results", cmd_results), ("quarantine", cmd_quarantine)):
        with pytest.raises(VoxflowError, match="^no run 0ff1ce "):
            handler(build_parser().parse_args([command, "--run", "0ff1ce"]), settings)
        for blank in ("", " "):  # the start of every run id: had listed "more than one run id starts with  (...)"
            with pytest.raises(VoxflowError, match=r"^--run is empty"):
                handler(build_parser().parse_args([command, "--run", blank]), settings)


def test_results_of_a_run_that_scored_nothing_say_what_it_did_instead(
    test_settings: Settings, mongo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    # A re-run that skipped every file listed "no predictions match", as if it had lost them.
    store = ResultStore(mongo_db)
    store.start_run({"run_id": "r0", "status": "completed", "scored": 2})
    store.insert_predictions([{"audio_sha256": f"{i:064x}", "model_version": "m1", "run_id": "r0", "score": 0.5, "label": "healthy"} for i in range(2)])
    store.start_run({"run_id": "r1", "status": "completed", "scored": 0, "skipped": 2, "duplicates": 0, "quarantined": 1})
    settings = test_settings.model_copy(update={"mongo_db": mongo_db.name})
    assert cmd_results(build_parser().parse_args(["results", "--run", "r1"]), settings) == 0
    assert capsys.readouterr().out == (
        "run r1 scored no file: 2 skipped, scored before by earlier runs, 1 quarantined "
        "(`voxflow results` lists their predictions; `voxflow quarantine --run r1` lists them)\n"
    )
    assert cmd_results(build_parser().parse_args(["results", "--run", "r1", "--json"]), settings) == 0
    assert capsys.readouterr().out == "[]\n"  # --json stays a list
    assert cmd_results(build_parser().parse_args(["results", "--run", "r0", "--label", "pathological"]), settings) == 0
    assert capsys.readouterr().out == "no predictions match\n"  # it scored some: the filter left them out


def test_stage_filter_lists_and_exports_one_stage_s_quarantine_records(
    test_settings: Settings, mongo_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A batch's duplicates crowded out its bad files in the listing.
    now = datetime.now(timezone.utc)
    store = ResultStore(mongo_db)
    store.start_run({"run_id": "r1", "status": "completed", "started_at": now})
    store.insert_quarantine(
        [{"path": f"/in/copy{i}.wav", "stage": "duplicate", "reason": "same content as /in/a.wav", "run_id": "r1", "created_at": now} for i in range(3)]
        + [{"path": "/in/b.wav", "stage": "quality", "reason": "clip too short", "run_id": "r1", "created_at": now}]
    )
    settings = test_settings.model_copy(update={"mongo_db": mongo_db.name})
    assert cmd_quarantine(build_parser().parse_args(["quarantine", "--stage", "Quality ", "--json"]), settings) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == ["/in/b.wav"]
    assert cmd_quarantine(build_parser().parse_args(["quarantine", "--run", "r1", "--stage", "duplicate", "-o", str(tmp_path / "d.csv")]), settings) == 0
    assert pd.read_csv(tmp_path / "d.csv")["path"].tolist() == [f"/in/copy{i}.wav" for i in range(3)]
    capsys.readouterr()
    assert cmd_quarantine(build_parser().parse_args(["quarantine", "--stage", "decode"]), settings) == 0
    assert "nothing quarantined at stage decode" in capsys.readouterr().out


def test_model_filter_lists_and_exports_one_model_s_predictions_and_refuses_a_model_that_scored_nothing(
    test_settings: Settings, mongo_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultStore(mongo_db)
    store.insert_predictions([
        {"audio_sha256": f"{i:064x}", "model_version": version, "run_id": version, "score": score, "label": "pathological"}
        for i in range(2) for version, score in (("xgb-fv3-old", 0.9), ("xgb-fv3-new", 0.8))
    ])
    settings = test_settings.model_copy(update={"mongo_db": mongo_db.name})
    args = build_parser().parse_args(["results", "--label", "pathological", "--min-score", "0.7", "--model", "xgb-fv3-new", "--json"])
    assert cmd_results(args, settings) == 0
    assert [(r["model_version"], r["score"]) for r in json.loads(capsys.readouterr().out)] == [("xgb-fv3-new", 0.8)] * 2
    assert cmd_results(build_parser().parse_args(["results", "--model", "xgb-fv3-old", "-o", str(tmp_path / "old.csv")]), settings) == 0
    assert pd.read_csv(tmp_path / "old.csv")["model_version"].tolist() == ["xgb-fv3-old"] * 2
    with pytest.raises(VoxflowError, match="^no stored prediction was made by model 'xgb-fv3-typo' "):
        cmd_results(build_parser().parse_args(["results", "--model", "xgb-fv3-typo"]), settings)


def test_subject_filter_lists_a_participants_recordings_as_a_manifest_cell_is_read(
    test_settings: Settings, mongo_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    ResultStore(mongo_db).insert_predictions([
        {"audio_sha256": f"{i:064x}", "model_version": "m1", "run_id": f"r{i}", "score": 0.5, "label": "healthy", "subject_id": f"S{i % 2}"}
        for i in range(4)
    ])
    settings = test_settings.model_copy(update={"mongo_db": mongo_db.name})
    assert cmd_results(build_parser().parse_args(["results", "--subject", " S1 ", "--json"]), settings) == 0
    assert sorted(r["run_id"] for r in json.loads(capsys.readouterr().out)) == ["r1", "r3"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["results", "--subject", "  "])
    assert "argument --subject: an empty subject_id matches no recording" in capsys.readouterr().err


def test_queue_status_without_latency_samples_prints_a_dash(test_settings: Settings, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.flushdb()
    assert cmd_queue(build_parser().parse_args(["queue", "status"]), test_settings) == 0
    assert "latency (last hour, 0 files): p50 -  p95 -\n" in capsys.readouterr().out


def _import_labels(argv: list[str], settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``voxflow labels import ARGV`` in this process on ``db``; its stdout."""
    assert cmd_labels(build_parser().parse_args(["labels", "import", *argv]), settings.model_copy(update={"mongo_db": db.name})) == 0
    return capsys.readouterr().out


def test_labels_import_names_the_values_it_counted_negative_and_the_conflicts(
    test_settings: Settings, mongo_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in "abcd":
        (tmp_path / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    labels = {"path": ["a.wav", "b.wav", "c.wav", "d.wav", "d.wav"], "label": ["Pathological", "healthy", "unknown", "pathological", "healthy"]}
    pd.DataFrame(labels).to_csv(tmp_path / "m.csv", index=False)
    out = _import_labels([str(tmp_path / "m.csv"), "--positive", "pathological"], test_settings, mongo_db, capsys)
    assert "imported 3 labels (1 positive, 2 negative: healthy 1, unknown 1), 2 rejected (1 audio listed with conflicting labels or subjects)" in out


def test_labels_import_counts_the_rows_kept_by_their_sha256_as_their_file_is_gone(
    test_settings: Settings, mongo_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd.DataFrame({"path": ["moved/a.wav", "moved/b.wav"], "sha256": ["ab" * 32, "cd" * 32], "label": ["1", "0"]}).to_csv(tmp_path / "m.csv", index=False)
    args = build_parser().parse_args(["labels", "import", str(tmp_path / "m.csv")])
    assert cmd_labels(args, test_settings.model_copy(update={"mongo_db": mongo_db.name})) == 0
    out, err = capsys.readouterr()
    assert "imported 2 labels (1 positive, 1 negative: 0 1; 2 by their sha256, their file unreadable), 0 rejected" in out
    assert err.startswith(f"imported by its sha256, its file unread: m.csv:2: {tmp_path / 'moved' / 'a.wav'}: ") and err.count("\n") == 2
    assert sorted((doc["audio_sha256"], doc["path"]) for doc in mongo_db["labels"].find()) == [("ab" * 32, None), ("cd" * 32, None)]


def test_labels_import_refuses_a_positive_label_no_row_has_and_keeps_the_stored_labels(
    test_settings: Settings, mongo_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A typo had stored every label as negative: "imported 3 labels (0 positive, 3 negative: ...)", the positives overwritten.
    for name in "abc":
        (tmp_path / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"], "label": ["pathological", "pathological", "healthy"]}).to_csv(tmp_path / "m.csv", index=False)
    _import_labels([str(tmp_path / "m.csv"), "--positive", "pathological"], test_settings, mongo_db, capsys)
    args = build_parser().parse_args(["labels", "import", str(tmp_path / "m.csv"), "--positive", "Pathologic"])
    with pytest.raises(SourceError, match=r"^--positive 'Pathologic' matches no label; the labels are: pathological 2, healthy 1$"):
        cmd_labels(args, test_settings.model_copy(update={"mongo_db": mongo_db.name}))
    assert sorted(doc["label"] for doc in mongo_db["labels"].find()) == ["healthy", "pathological", "pathological"]


def test_voiced_manifest_counts_the_records_it_skips(test_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    voiced_record(tmp_path / "voiced", "voice001", "healthy")
    voiced_record(tmp_path / "voiced", "voice002", None)
    voiced_record(tmp_path / "voiced", "voice003", "healthy", header=False)
    args = build_parser().parse_args(["voiced-manifest", str(tmp_path / "voiced"), "-o", str(tmp_path / "m.csv")])
    assert cmd_voiced_manifest(args, test_settings) == 0
    out, err = capsys.readouterr()
    assert out == f"wrote 1 records to {tmp_path / 'm.csv'} (1 healthy); 2 records skipped\n"
    assert err.splitlines() == ["skipped voice002: no 'Diagnosis:' line in voice002-info.txt", "skipped voice003: no voice003.hea next to voice003-info.txt"]


def test_voiced_manifest_of_a_missing_folder_says_not_found(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["voiced-manifest", str(tmp_path / "nope")], bare_env(tmp_path), timeout=60), f"VOICED folder {tmp_path / 'nope'} not found")


def test_labels_import_of_a_folder_suggests_voiced(tmp_path: Path) -> None:
    proc = run_cli(["labels", "import", str(tmp_path)], bare_env(tmp_path), timeout=60)
    assert_one_line_error(proc, f"{tmp_path} is a folder, not a label manifest (CSV/Parquet); for a VOICED folder add --voiced")


def test_a_reader_that_has_gone_ends_the_command_without_a_word(tmp_path: Path) -> None:
    # `voxflow results --json | head -c 10` had printed "voxflow: error: [Errno 32] Broken pipe" and exited 2.
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "voxflow.cli", "services", "status"], env=bare_env(tmp_path), cwd=REPO,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""


def test_enqueue_stores_a_manifest_label_as_analyze_does_and_names_one_it_cannot_read(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label\na.wav, Pathological\nb.wav,sick\n")
    done = run_cli(["enqueue", str(tmp_path / "m.csv"), "--json"], cli_env, timeout=60)
    assert last_json(done)["enqueued"] == 2
    assert done.stderr == f"warning: {tmp_path / 'm.csv'} (row 2): label 'sick' is not 0/1 nor pathological/healthy: its file is scored without a reference label\n"
    entries = FileQueue(connect_redis(cli_env["VOXFLOW_REDIS_URL"])).read("test", count=10, claim_idle_s=60)
    assert [(Path(entry.path).name, entry.label) for entry in entries] == [("a.wav", "pathological"), ("b.wav", None)]


def test_a_ctrl_c_that_cuts_a_dask_call_before_it_starts_leaves_no_traceback_on_the_console(caplog: pytest.LogCaptureFixture) -> None:
    runner = LoopRunner(asynchronous=False)
    runner.start()
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.addFilter(CtrlCNotACrash())
    tornado_log = logging.getLogger("tornado.application")
    tornado_log.addHandler(console)
    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    try:
        runner.loop.add_callback(time.sleep, 0.5)  # the loop is busy: the call's coroutine has not started when cut
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            sync(runner.loop, asyncio.sleep, 5)
        time.sleep(0.8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        tornado_log.removeHandler(console)
        runner.stop()
    assert any(isinstance(r.exc_info and r.exc_info[1], NameError) for r in caplog.records), "distributed's sync() no longer fails so: drop the filter"
    assert stream.getvalue() == ""


def test_features_status_and_compact(tmp_path: Path, test_settings: Settings) -> None:
    # The session's Redis: a compaction holds the feature store's lock there.
    env, root = bare_env(tmp_path / "home", VOXFLOW_REDIS_URL=services.redis_url(test_settings)), tmp_path / "home" / "features"
    assert run_cli(["features", "status"], env, timeout=60).stdout == f"no features stored under {root} yet\n"
    store = FeatureStore(root)
    for run_id, chunk_id in (("r1", 0), ("r1", 1), ("r2", 0)):
        store.write_chunk(pa.table({"audio_sha256": [f"{run_id}-{chunk_id}"], "f0_mean_hz": [1.0]}), feature_version=4, run_id=run_id, chunk_id=chunk_id)
    before = last_json(run_cli(["features", "status", "--json"], env, timeout=60))
    assert [{k: v for k, v in row.items() if k != "bytes"} for row in before] == [{"feature_version": 4, "chunk_files": 3, "runs": 2, "parts": 0}]

    (root / "feature_version=4" / "merged").write_text("a file where the parts' folder goes")
    refused = run_cli(["features", "compact"], env, timeout=60)
    assert_one_line_error(refused, "feature version 4 of")
    assert "its chunk files left as they were" in refused.stderr and len(store.files(feature_version=4)) == 3

    (root / "feature_version=4" / "merged").unlink()
    done = run_cli(["features", "compact"], env, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("feature version 4: merged 3 chunk files (3 rows) into 1 part in "), done.stdout
    after = run_cli(["features", "status"], env, timeout=60).stdout.splitlines()
    assert after[0].split() == ["feature_version", "chunk_files", "runs", "parts", "bytes"] and after[1].split()[:4] == ["4", "0", "0", "1"]
    assert sorted(store.read(feature_version=4)["audio_sha256"]) == ["r1-0", "r1-1", "r2-0"]
    again = last_json(run_cli(["features", "compact", "--feature-version", "4", "--json"], env, timeout=60))
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in again] == [{"feature_version": 4, "merged": 0, "rows": 0, "parts": [], "unreadable": 0, "stale_removed": 0}]
