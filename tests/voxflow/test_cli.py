"""The front door: help that tells a user what to do, and services status without secrets."""

import pytest

from tests.voxflow_cli import last_json, run_cli
from voxflow.cli import build_parser


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
