import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.voxflow_cli import REPO

# Each case runs in a fresh interpreter: a process has one forkserver, and this test process's may be running already.
_PROBE = """
import json, os, sys
from pathlib import Path
import psutil
from tasks.forkserver import is_forkserver, start_forkserver
from tests.helpers import sigint_action
from voxflow.settings import Settings

settings = Settings(home=Path(sys.argv[1]), numba_cache_dir=Path(sys.argv[1]) / "numba", dask_min_workers=1, dask_max_workers=1,
                    **json.loads(sys.argv[2]))
start_forkserver(settings)
servers = [p for p in psutil.Process().children() if is_forkserver(p)]
report = {"servers": len(servers), "own_omp": os.environ.get("OMP_NUM_THREADS"), "own_numba": os.environ.get("NUMBA_CACHE_DIR"),
          "own_sigint": sigint_action(os.getpid())}
if servers:
    report["server_sigint"] = sigint_action(servers[0].pid)
    environ = servers[0].environ()
    report.update(omp=environ.get("OMP_NUM_THREADS"), numba=environ.get("NUMBA_CACHE_DIR"), cmdline=" ".join(servers[0].cmdline()))
    from tasks.cluster import dask_client
    with dask_client(settings, warm_up=False) as client:
        client.wait_for_workers(1, timeout=60)
        report["worker_parents"] = list(client.run(lambda: psutil.Process().ppid()).values())
    report["pandas_here"] = "pandas" in sys.modules  # distributed would import it here to name it as a preload
    report["server_pid"] = servers[0].pid
print(json.dumps(report))
"""


def _probe(tmp_path: Path, **settings: object) -> dict:
    env_without_caps = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path), json.dumps(settings)], cwd=REPO, env=env_without_caps,
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(180)
def test_the_forkserver_starts_early_in_the_workers_environment_and_the_cluster_forks_from_it(tmp_path: Path) -> None:
    report = _probe(tmp_path)
    assert report["servers"] == 1 and "tasks.worker_preload" in report["cmdline"]
    assert report["omp"] == "1" and report["numba"] == str(tmp_path / "numba")
    assert report["own_omp"] is None and report["own_numba"] is None  # the caller's environment is as it was
    assert report["server_sigint"] == "ignored" and report["own_sigint"] == "caught"  # the caller's Ctrl-C is its own again
    assert report["worker_parents"] == [report["server_pid"]]
    assert not report["pandas_here"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "settings", [{"dask_start_method": "spawn"}, {"dask_address": "tcp://10.0.0.7:8786"}, {"dask_cluster_class": "distributed.LocalCluster"}]
)
def test_nothing_starts_where_no_local_worker_forks(tmp_path: Path, settings: dict) -> None:
    assert _probe(tmp_path, **settings)["servers"] == 0
