"""The settings model: paths made absolute, levels in any case, worker bounds that agree, every field documented."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from voxflow.cli import _bad_setting
from voxflow.settings import Settings


def test_relative_and_home_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    settings = Settings(home="relhome", numba_cache_dir="~/numba", backup_dir="~/backups")
    assert settings.home == tmp_path / "relhome"
    assert settings.numba_cache_dir == tmp_path / "me" / "numba"
    assert settings.backup_dir == str(tmp_path / "me" / "backups")
    assert Settings(backup_dir="s3://bucket/voxflow").backup_dir == "s3://bucket/voxflow"


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
