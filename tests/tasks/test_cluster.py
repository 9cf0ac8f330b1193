import gc
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import dask
import psutil
import pytest
import yaml
from distributed import Client, LocalCluster

import tasks.cluster
from tasks.chunk import rows_to_table
from tasks.cluster import (
    WORKER_PRELOAD,
    WarmUp,
    dask_client,
    first_worker_joined,
    handed_over,
    initial_workers,
    local_cluster_ahead,
    local_worker_processes,
    pre_spawn_environ,
    renamed_cluster_spec,
    run_cluster_kwargs,
    started_ahead,
    with_handed_cluster,
)
from tasks.forkserver import is_forkserver
from voxflow.errors import ClusterError, ServiceError
from voxflow.settings import Settings

_DASK_DEFAULT = "distributed.nanny.pre-spawn-environ"


def test_pre_spawn_environ_keeps_dasks_thread_caps_but_not_its_malloc_trim() -> None:
    environ = pre_spawn_environ()
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get(_DASK_DEFAULT)  # what Dask would set
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ["OMP_NUM_THREADS"] == dask.config.get(_DASK_DEFAULT)["OMP_NUM_THREADS"]


@pytest.mark.timeout(120)
def test_local_workers_start_with_glibcs_own_malloc_settings_and_no_profiler(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, dask_min_workers=2, dask_max_workers=2)
    before = dask.config.get(_DASK_DEFAULT)
    with dask_client(settings, warm_up=False) as client:
        trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        threads = client.run(os.environ.get, "OMP_NUM_THREADS")
        profiling = client.run(dask.config.get, "distributed.worker.profile.enabled")
    assert len(trim) == 2 and set(trim.values()) == {None}
    assert set(threads.values()) == {"1"}
    assert set(profiling.values()) == {False}  # the nanny's config reaches the worker over its environment
    assert dask.config.get(_DASK_DEFAULT) == before  # restored once the cluster is closed


def _imported_by(function: Callable[..., object], *args: object) -> list[str]:
    before = set(sys.modules)
    function(*args)
    return sorted(name for name in set(sys.modules) - before if "." not in name)


@pytest.mark.timeout(180)
def test_a_cluster_started_ahead_is_what_the_flow_connects_to(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, dask_min_workers=2, dask_max_workers=2)
    with local_cluster_ahead(settings) as scheduler_address:
        address = scheduler_address()
        assert address is not None and address.startswith("tcp://127.0.0.1:")
        assert started_ahead(address)  # voxflow's own cluster, handed over by address: not an existing one
        # What analyze_batch does with the address the CLI hands over; the workers may still be starting.
        with handed_over(address):
            handed = with_handed_cluster(settings)
        assert handed.dask_address == address and with_handed_cluster(settings) == settings
        with dask_client(handed) as client:
            client.wait_for_workers(2, timeout=60)
            warmed = client.run(lambda: WORKER_PRELOAD in sys.modules and "xgboost" in sys.modules and "tasks.extract" in sys.modules)
            trim = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
            frozen = client.run(gc.get_freeze_count)  # the libraries' objects, out of every later collection
            unused = client.run(lambda: "sklearn" in sys.modules)  # XGBoost's estimator classes would import it (~0.6 s)
            first_chunk_imports = client.run(_imported_by, rows_to_table, [])  # the result table of a worker's first chunk
    assert len(warmed) == 2 and all(warmed.values()) and set(trim.values()) == {None}
    assert set(unused.values()) == {False} and list(first_chunk_imports.values()) == [[], []]
    assert all(count > 100_000 for count in frozen.values())
    with pytest.raises(OSError):  # closed with the block
        Client(address, timeout="2s")
    assert not started_ahead(address)


def test_a_batch_starts_one_worker_per_full_chunk_within_the_bounds() -> None:
    settings = Settings(dask_min_workers=2, dask_max_workers=6)
    assert [initial_workers(files, settings, 10) for files in (0, 10, 11, 35, 10_000)] == [2, 2, 2, 4, 6]


@pytest.mark.timeout(120)
def test_workers_started_for_a_batch_outlast_its_discovery(tmp_path: Path) -> None:
    # Adaptive scaling retires an idle worker above the minimum after 3 s by default; the CLI's discovery
    # and Prefect's set-up take about that long before the first chunk is submitted.
    settings = Settings(home=tmp_path, dask_min_workers=1, dask_max_workers=2)
    with local_cluster_ahead(settings, workers=2) as scheduler_address:
        with Client(scheduler_address(), timeout="20s") as client:
            client.wait_for_workers(2, timeout=60)
            time.sleep(6)
            assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


@pytest.mark.timeout(120)
def test_a_cluster_that_fails_to_warm_up_is_closed_and_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(cluster: object) -> Client:  # the warm-up's client: the workers exist by then
        raise RuntimeError("warm-up refused")

    monkeypatch.setattr(tasks.cluster, "Client", refused)
    with pytest.raises(ServiceError, match="the local Dask cluster did not start: RuntimeError: warm-up refused"):
        with local_cluster_ahead(Settings(home=tmp_path, dask_min_workers=1, dask_max_workers=1)):
            pass
    assert local_worker_processes(psutil.Process()) == []


def test_a_scheduler_that_does_not_start_is_a_clear_error_when_its_address_is_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def taken(settings: Settings, **kwargs: object) -> None:
        raise OSError("[Errno 98] Address already in use")

    monkeypatch.setattr(tasks.cluster, "_start_cluster", taken)
    with pytest.raises(ServiceError, match="the local Dask cluster did not start: OSError: .*Address already in use"):
        with local_cluster_ahead(Settings(home=tmp_path, dask_min_workers=1, dask_max_workers=1)) as scheduler_address:
            scheduler_address()


def test_an_existing_scheduler_or_cluster_class_starts_nothing_ahead(tmp_path: Path) -> None:
    with local_cluster_ahead(Settings(home=tmp_path, dask_address="tcp://10.0.0.7:8786")) as scheduler_address:
        assert scheduler_address() is None
    with local_cluster_ahead(Settings(home=tmp_path, dask_cluster_class="distributed.LocalCluster")) as scheduler_address:
        assert scheduler_address() is None


@pytest.mark.timeout(60)
def test_a_scheduler_that_never_answers_is_a_clear_error_within_the_timeout(tmp_path: Path, silent_listener: str) -> None:
    # Client(address, timeout="20s") bounded the connection, not the handshake after it: it waited forever.
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"Dask scheduler at {silent_listener} did not answer within 20 s"):
        with dask_client(Settings(home=tmp_path, dask_address=silent_listener)):
            pass
    assert time.monotonic() - started < 25


@pytest.mark.timeout(60)
def test_workers_that_cannot_load_voxflow_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def without_voxflow(plugin: WarmUp, worker: object) -> None:
        raise ModuleNotFoundError("No module named 'tasks'")

    monkeypatch.setattr(WarmUp, "setup", without_voxflow)  # in-process workers: the patched plugin is what they load
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        with pytest.raises(ClusterError, match=r"cannot run voxflow's tasks \(ModuleNotFoundError: No module named 'tasks'\): install voxflow"):
            with dask_client(Settings(home=tmp_path, dask_address=cluster.scheduler_address)):
                pass


@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_start_the_configured_way(tmp_path: Path, method: str) -> None:
    settings = Settings(home=tmp_path, dask_min_workers=2, dask_max_workers=2, dask_start_method=method)
    with dask_client(settings) as client:
        client.wait_for_workers(2, timeout=60)
        forked = client.run(lambda: is_forkserver(psutil.Process().parent()))
        config = client.run(dask.config.get, "distributed.worker.multiprocessing-method")
        pids = client.run(os.getpid)
        found = {process.pid for process in local_worker_processes(psutil.Process())}
    assert len(forked) == 2 and set(forked.values()) == {method == "forkserver"}
    assert set(config.values()) == {method}
    assert found == set(pids.values())


def _cluster_spec(name: str) -> dict:
    service = {"selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"}}
    return {"metadata": {"name": name}, "spec": {"worker": {}, "scheduler": {"service": service}}}


def test_a_renamed_cluster_spec_names_its_cluster_and_its_scheduler_service_selector() -> None:
    spec = _cluster_spec("voxflow-analyze")
    renamed = renamed_cluster_spec(spec, "a1b2c3d4")
    assert renamed["metadata"]["name"] == "voxflow-analyze-a1b2c3d4"
    assert renamed["spec"]["scheduler"]["service"]["selector"] == {
        "dask.org/cluster-name": "voxflow-analyze-a1b2c3d4", "dask.org/component": "scheduler"}
    assert spec == _cluster_spec("voxflow-analyze")  # the settings' own spec, used again by the next run, is untouched


def test_a_long_cluster_name_is_shortened_to_a_valid_one() -> None:
    validation = pytest.importorskip("dask_kubernetes.operator.validation")
    name = renamed_cluster_spec(_cluster_spec("x" * 44 + "-analyze"), "a1b2c3d4")["metadata"]["name"]
    validation.validate_cluster_name(name)  # raises on a name the operator would refuse
    assert name == "x" * 44 + "-a1b2c3d4"


class _SpecCluster(LocalCluster):
    """A cluster class that takes a spec, as dask-kubernetes' KubeCluster does."""

    def __init__(self, custom_cluster_spec: dict | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)


def test_every_run_gets_a_cluster_spec_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(_cluster_spec("voxflow-analyze")))
    kwargs = {"custom_cluster_spec": str(path), "namespace": "voxflow"}
    first, second = run_cluster_kwargs(_SpecCluster, kwargs), run_cluster_kwargs(_SpecCluster, kwargs)
    assert first["namespace"] == "voxflow" and kwargs["custom_cluster_spec"] == str(path)
    names = {run["custom_cluster_spec"]["metadata"]["name"] for run in (first, second)}
    assert len(names) == 2 and all(name.startswith("voxflow-analyze-") for name in names)
    from_dict = run_cluster_kwargs(_SpecCluster, {"custom_cluster_spec": _cluster_spec("voxflow-analyze")})
    assert from_dict["custom_cluster_spec"]["metadata"]["name"] not in names | {"voxflow-analyze"}
    assert run_cluster_kwargs(_SpecCluster, {"n_workers": 2}) == {"n_workers": 2}


@pytest.mark.parametrize("given", ["path", "dict"])
def test_a_spec_from_dasks_kubernetes_config_is_renamed_too(tmp_path: Path, given: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(_cluster_spec("voxflow-analyze")))
    spec = str(path) if given == "path" else _cluster_spec("voxflow-analyze")
    with dask.config.set({"kubernetes.custom-cluster-spec": spec}):
        names = {run_cluster_kwargs(_SpecCluster, {"n_workers": 2})["custom_cluster_spec"]["metadata"]["name"] for _ in range(2)}
        assert run_cluster_kwargs(LocalCluster, {"n_workers": 2}) == {"n_workers": 2}  # a class without specs gets none
    assert len(names) == 2 and all(name.startswith("voxflow-analyze-") for name in names)


def test_an_unreadable_cluster_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="custom_cluster_spec"):
        run_cluster_kwargs(_SpecCluster, {"custom_cluster_spec": str(tmp_path / "missing.yaml")})


def test_a_run_waits_for_a_first_worker_that_is_slow_to_join_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # The model's copy to the workers waited 20 s for one, then failed the run ("has no workers"): a first run after
    # an install or an update, its workers compiling numba's kernels, failed that way.
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster, timeout="2s") as client:
        joins = threading.Timer(2.5, cluster.scale, args=(1,))
        joins.start()
        began = time.monotonic()
        with caplog.at_level(logging.INFO, logger="tasks.cluster"):
            first_worker_joined(client, timeout_s=60, said_every_s=1)
        joins.join()
        assert 2.5 <= time.monotonic() - began < 30 and len(client.scheduler_info()["workers"]) == 1
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Waiting for the first Dask worker")]
    assert waiting and f"to join the scheduler at {cluster.scheduler_address} (1 s so far, up to 60 s)" in waiting[0], waiting


def test_no_first_worker_within_the_timeout_is_one_error_naming_the_setting() -> None:
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        began = time.monotonic()
        with pytest.raises(ClusterError, match=rf"^the Dask scheduler at {cluster.scheduler_address} has no workers: none joined within 1.5 s \(VOXFLOW_DASK_WORKER_START_TIMEOUT_S\)$"):
            first_worker_joined(client, timeout_s=1.5, said_every_s=1)
        assert time.monotonic() - began < 5
