"""The settings model: paths made absolute, levels in any case, worker bounds that agree, every field documented."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.voxflow_cli import assert_one_line_error, bare_env, run_cli
from voxflow.cli import _bad_setting
from voxflow.settings import Settings, unknown_variables


def test_relative_and_home_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    settings = Settings(home="relhome", numba_cache_dir="~/numba", backup_dir="~/backups")
    assert settings.home == tmp_path / "relhome"
    assert settings.numba_cache_dir == tmp_path / "me" / "numba"
    assert settings.backup_dir == str(tmp_path / "me" / "backups")
    assert Settings(backup_dir="memory://bucket/voxflow").backup_dir == "memory://bucket/voxflow"


def test_log_level_in_any_case() -> None:
    assert Settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="loud")


def test_default_max_workers_is_at_least_the_minimum() -> None:
    many = (os.cpu_count() or 1) + 3
    assert Settings(dask_min_workers=many).dask_max_workers == many
    assert Settings(dask_min_workers=1).dask_max_workers == (os.cpu_count() or 1)
    with pytest.raises(ValidationError, match=r"VOXFLOW_DASK_MAX_WORKERS \(2\) is below VOXFLOW_DASK_MIN_WORKERS \(4\)"):
        Settings(dask_min_workers=4, dask_max_workers=2)


def _readme_configuration_rows() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def _documented(default: object) -> str:
    """A default as the README's tables write it: 120.0 as 120, False as false."""
    if isinstance(default, bool):
        return str(default).lower()
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_every_setting_has_a_row_with_its_default_in_the_readme() -> None:
    rows = _readme_configuration_rows()
    for name, field in Settings.model_fields.items():
        # A field read by an alias first (PREFECT_API_URL) is documented by that name.
        variable = field.validation_alias.choices[0] if field.validation_alias else f"VOXFLOW_{name.upper()}"
        found = [row for row in rows if f"`{variable}`" in row.split("|")[1]]
        assert found, f"README.md, Configuration: no row for {variable}"
        if isinstance(field.default, (bool, int, float, str)):
            assert _documented(field.default) in found[0], f"README.md, Configuration: {variable} row lacks its default {field.default!r}"


def test_path_settings_reach_child_processes_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("VOXFLOW_NUMBA_CACHE_DIR", "VOXFLOW_BACKUP_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home="home", numba_cache_dir="~/numba", backup_dir="backups")
    assert settings.path_variables() == {
        "VOXFLOW_HOME": str(tmp_path / "home"), "VOXFLOW_NUMBA_CACHE_DIR": str(Path.home() / "numba"), "VOXFLOW_BACKUP_DIR": str(tmp_path / "backups"),
    }
    assert Settings(home="home").path_variables() == {"VOXFLOW_HOME": str(tmp_path / "home")}


def refusal(**fields: object) -> str:
    """The line the CLI prints after ``voxflow: error: `` for settings ``fields`` (each must be refused)."""
    with pytest.raises(ValidationError) as refused:
        Settings(**fields)
    return _bad_setting(refused.value)


@pytest.mark.parametrize("variable", ["PREFECT_API_URL", "PREFECT_UI_URL"])
@pytest.mark.parametrize("url", ["http://admin:xq7zz9@127.0.0.1:4200/api", "https://xq7zz9@prefect.example/api"])
def test_a_prefect_url_with_user_info_is_refused_without_showing_it(variable: str, url: str) -> None:
    # Prefect printed it on every flow command ("View at http://admin:...@.../runs/flow-run/...").
    line = refusal(**{variable: url})
    assert line.startswith(f"bad setting {variable}: must not carry a user name or password")
    assert "PREFECT_API_AUTH_STRING" in line and "PREFECT_API_KEY" in line and "xq7zz9" not in line


@pytest.mark.parametrize(
    ("variable", "option", "expected"),
    [
        ("VOXFLOW_MONGO_URI", "tls=True", "The value of tls must be 'true' or 'false'"),
        ("VOXFLOW_MONGO_URI", "tls=1", "The value of tls must be 'true' or 'false'"),
        ("VOXFLOW_MONGO_URI", "ssl=yes", "The value of ssl must be 'true' or 'false'"),
        ("VOXFLOW_MONGO_URI", "readPreference=nope", "Not a valid read preference"),
        ("VOXFLOW_DASHBOARD_MONGO_URI", "tsl=true", "Unknown option. Did you mean one of (tls, "),
    ],
)
def test_a_mongodb_option_pymongo_would_ignore_is_refused(variable: str, option: str, expected: str) -> None:
    # pymongo only warned, and built a client without the option: without TLS for tls=True.
    line = refusal(**{variable.removeprefix("VOXFLOW_").lower(): f"mongodb://voxflow:xq7zz9@db:27017/?{option}"})
    assert line.startswith(f"bad setting {variable}: not a valid MongoDB URI: {expected}")
    assert "xq7zz9" not in line


@pytest.mark.parametrize(
    "field", ["home", "backup_dir", "numba_cache_dir", "dashboard_address", "dask_address", "dask_cluster_class", "model_version", "mongo_uri", "work_pool"]
)
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_or_blank_setting_is_refused(field: str, value: str) -> None:
    # VOXFLOW_HOME= started servers under ./services, VOXFLOW_BACKUP_DIR= backed up (and pruned) the current
    # folder, VOXFLOW_DASHBOARD_ADDRESS= bound every interface.
    assert refusal(**{field: value}) == f"bad setting VOXFLOW_{field.upper()}: is empty ({value!r}): unset it for the default, or give a value"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("mongo_db", "a.b", "'a.b' is not a MongoDB database name: it may not hold '.'"),
        ("mongo_db", "a/b", "may not hold '/'"),
        ("mongo_db", "a b", "may not hold ' '"),
        ("mongo_db", "x$y", "may not hold '$'"),
        ("mongo_db", "x" * 64, "a MongoDB database name has at most 63 bytes, not 64"),
        ("dask_address", "notanaddress", "not a Dask scheduler address such as tcp://host:8786: missing port number in address 'notanaddress'"),
        ("dask_address", "foo://host:8786", "unknown address scheme 'foo'"),
        ("dask_address", "tcp://host:0", "it needs a host and a port from 1 to 65535"),
        ("backup_dir", "foo://bucket/voxflow", "fsspec knows no protocol 'foo'"),
        ("work_pool", "bad/pool name", "'bad/pool name' is not a Prefect work pool name: it may not hold '/'"),
        ("work_pool", "'  '", "it needs more than quotes and spaces"),
        ("work_pool", "Prefect-pool", "Prefect keeps names that start with 'prefect' for itself"),
    ],
)
def test_a_setting_that_would_fail_later_with_a_traceback_is_refused_at_start(field: str, value: str, expected: str) -> None:
    # pymongo's InvalidName, distributed's "missing port number", fsspec's "Protocol not known", Prefect's WorkPoolCreate
    # ValidationError or 403: each a traceback once a command reached it.
    line = refusal(**{field: value})
    assert line.startswith(f"bad setting VOXFLOW_{field.upper()}: ") and expected in line


def test_a_backup_url_whose_package_is_missing_names_it() -> None:
    pytest.importorskip("fsspec")
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    assert refusal(backup_dir="s3://bucket/voxflow") == "bad setting VOXFLOW_BACKUP_DIR: s3:// needs a package this environment lacks: Install s3fs to access S3"


@pytest.mark.parametrize(("field", "value"), [("mongo_db", "voxflow_test-1"), ("dask_address", "tcp://127.0.0.1:8786"), ("dask_address", "scheduler:8786"),
                                              ("dask_address", "tls://[::1]:8786"), ("backup_dir", "memory://voxflow"), ("work_pool", "gpu pool")])
def test_valid_names_and_addresses_are_kept(field: str, value: str) -> None:
    assert getattr(Settings(**{field: value}), field) == value


@pytest.mark.parametrize(("address", "reason"), [("999.1.1.1", "Name or service not known"), ("192.0.2.1", "Cannot assign requested address")])
def test_a_dashboard_address_that_cannot_be_served_on_is_one_line(tmp_path: Path, address: str, reason: str) -> None:
    # Streamlit's socket.gaierror (or OSError) traceback.
    proc = run_cli(["dashboard", "--port", "0"], bare_env(tmp_path, VOXFLOW_DASHBOARD_ADDRESS=address), timeout=60)
    assert_one_line_error(proc, f"bad setting VOXFLOW_DASHBOARD_ADDRESS: cannot serve on {address} ({reason})")


@pytest.mark.parametrize(
    ("field", "too_big", "highest"),
    [
        ("cache_ttl_s", 99999999999999999999, 365 * 86400),  # Redis refused the expiry part-way through a run
        ("lock_ttl_s", 1e300, 86400),  # backup and drain failed
        ("max_duration_s", 1e308, 4 * 3600),  # every clip quarantined with an OverflowError
        ("dashboard_window_h", 1e8, 30 * 24),  # "date value out of range" on dashboard pages
        ("silence_dbfs", 10, 0),  # RMS of full-scale audio is at most 0 dBFS
        ("sample_rate", 10**9, 192_000),
        ("max_file_mb", 1e308, 100_000),
        ("file_timeout_s", 1e300, 86400),  # the limit's timer thread died with an OverflowError
        ("metrics_maxlen", 10**20, 10_000_000),
        ("mongo_retry_s", 1e12, 86400),  # the retry delays were listed up to it first
        ("service_start_timeout_s", 1e300, 3600),
        ("dashboard_refresh_s", 1e300, 86400),
    ],
)
def test_a_number_beyond_what_any_real_setting_needs_is_refused(field: str, too_big: float, highest: int) -> None:
    assert refusal(**{field: too_big}) == f"bad setting VOXFLOW_{field.upper()}: Input should be less than or equal to {highest}"
    assert getattr(Settings(**{field: highest}), field) == highest


def test_a_silence_threshold_below_any_signal_is_refused() -> None:
    assert refusal(silence_dbfs=-201) == "bad setting VOXFLOW_SILENCE_DBFS: Input should be greater than or equal to -200"


def test_variables_that_name_no_setting_are_found_with_the_closest_setting() -> None:
    environ = {
        "VOXFLOW_MONGO_URL": "mongodb://db/", "voxflow_redis_uri": "redis://cache/0", "VOXFLOW_NOTHING_LIKE_IT": "1",
        "VOXFLOW_HOME": "/srv/voxflow", "voxflow_chunk_size": "8", "VOXFLOW_PREFECT_API_URL": "http://prefect/api",
        "VOXFLOW_TEST_REDIS_DB": "12", "VOXFLOW_SAVE_SCREENSHOT": "page.png", "PREFECT_API_KEY": "k", "PATH": "/bin",
    }
    assert unknown_variables(environ) == {"VOXFLOW_MONGO_URL": "VOXFLOW_MONGO_URI", "voxflow_redis_uri": "VOXFLOW_REDIS_URL", "VOXFLOW_NOTHING_LIKE_IT": None}


def test_a_misspelt_setting_is_one_warning_line_and_the_command_goes_on(tmp_path: Path) -> None:
    # It was ignored without a word: voxflow went on with its embedded MongoDB.
    proc = run_cli(["services", "status", "--json"], bare_env(tmp_path, VOXFLOW_MONGO_URL="mongodb://db.example:27017/"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "voxflow: warning: VOXFLOW_MONGO_URL is not a setting (did you mean VOXFLOW_MONGO_URI?); ignored\n"


@pytest.mark.parametrize(
    ("variable", "argv", "failed"),
    [("VOXFLOW_HOME", ["runs"], "Not a directory: {file}/services"), ("VOXFLOW_NUMBA_CACHE_DIR", ["analyze", "{folder}"], "File exists: {file}")],
)
def test_a_path_setting_that_names_a_file_is_named_in_the_error(tmp_path: Path, variable: str, argv: list[str], failed: str) -> None:
    # "[Errno 20] Not a directory: '.../services'", "[Errno 17] File exists: ...": no word of the setting.
    file = tmp_path / "notes.txt"
    file.write_text("a file, not a folder")
    env = bare_env(tmp_path / "home", **{variable: str(file)})
    proc = run_cli([arg.format(folder=tmp_path) for arg in argv], env, timeout=120)
    assert_one_line_error(proc, f"{variable} {file} is not usable: {failed.format(file=file)}")
