"""The settings model: paths made absolute, levels in any case, worker bounds that agree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

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
