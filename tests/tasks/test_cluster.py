import os
from pathlib import Path

import dask
import pytest

from tasks.cluster import dask_client, pre_spawn_environ
from voxflow.settings import Settings

_DASK_DEFAULT = "distributed.nanny.pre-spawn-environ"


def test_pre_spawn_environ_keeps_dasks_thread_caps_but_not_its_malloc_trim() -> None:
    environ = pre_spawn_environ()
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get(_DASK_DEFAULT)  # what Dask would set
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ["OMP_NUM_THREADS"] == dask.config.get(_DASK_DEFAULT)["OMP_NUM_THREADS"]


@pytest.mark.timeout(120)
def test_local_workers_start_with_glibcs_own_malloc_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An earlier plain LocalCluster in this test process leaves the variable in os.environ; voxflow's CLI processes start clean.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    settings = Settings(home=tmp_path, dask_min_workers=2, dask_max_workers=2)
    before = dask.config.get(_DASK_DEFAULT)
    with dask_client(settings, warm_up=False) as client:
        trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(os.environ.get, "OMP_NUM_THREADS")
    assert len(trim) == 2 and set(trim.values()) == {None}
    assert set(threads.values()) == {"1"}
    assert dask.config.get(_DASK_DEFAULT) == before  # restored once the cluster is closed
