"""``voxflow dashboard``: the Streamlit command line it runs."""

from __future__ import annotations

from voxflow.cli import build_parser, dashboard_command
from voxflow.settings import Settings


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_binds_to_loopback_headless_without_usage_stats() -> None:
    argv = dashboard_command(Settings())
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    assert _option(argv, "--server.address") == "127.0.0.1" and _option(argv, "--server.port") == "8501"
    assert _option(argv, "--server.headless") == "true" and _option(argv, "--browser.gatherUsageStats") == "false"


def test_port_flag_and_address_setting() -> None:
    args = build_parser().parse_args(["dashboard", "--port", "9123"])
    argv = dashboard_command(Settings(dashboard_address="0.0.0.0"), args.port)
    assert (_option(argv, "--server.address"), _option(argv, "--server.port")) == ("0.0.0.0", "9123")


def test_port_zero_is_passed_on_for_streamlit_to_pick_one() -> None:
    args = build_parser().parse_args(["dashboard", "--port", "0"])
    assert _option(dashboard_command(Settings(dashboard_port=9123), args.port), "--server.port") == "0"
    assert _option(dashboard_command(Settings(dashboard_port=9123)), "--server.port") == "9123"
