"""The front door: help that tells a user what to do, and services status without secrets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import Client

from tests.voxflow_cli import last_json, run_cli
from voxflow.cli import build_parser, cmd_analyze
from voxflow.settings import Settings


def test_help_lists_every_command_and_source_forms(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("analyze", "results", "quarantine", "runs", "train", "services"):
        assert command in text
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "--help"])
    text = capsys.readouterr().out
    assert "folder (recursive)" in text and "manifest" in text and "--json" in text


def test_services_status_redacts_secrets(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "VOXFLOW_REDIS_URL": "redis://:hunter2@127.0.0.1:6399/0"}
    rows = last_json(run_cli(["services", "status", "--json"], env, timeout=60))
    by_name = {row["name"]: row for row in rows}
    assert by_name["redis"]["mode"] == "external" and "hunter2" not in by_name["redis"]["address"]
    assert "***" in by_name["redis"]["address"] and by_name["redis"]["state"] == "unreachable"
    assert by_name["mongo"]["state"] == "running"


@pytest.mark.timeout(180)
def test_analyze_hands_the_flow_the_cluster_it_started_ahead(
    test_settings: Settings, voiced_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import flows.analyze

    seen: dict[str, object] = {}

    def flow_in_place(*, source: str, model_version: str | None, chunk_size: int | None, dask_address: str | None) -> dict:
        # Stands in for the Prefect flow (tested end to end in tests/flows): what matters here is the address it gets.
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
