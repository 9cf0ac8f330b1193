"""What can be checked here of the compose file, the image and the Kubernetes cluster spec (no Docker engine, no cluster)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tasks.cluster import dask_client, resolve_cluster_class
from voxflow.cli import build_parser
from voxflow.errors import ServiceError
from voxflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = REPO / "deployments"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())


def _cli_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_compose_runs_the_production_stack(compose: dict) -> None:
    services = compose["services"]
    mongos = [s for s in services.values() if s.get("image", "").startswith("mongo:") and "--replSet" in s.get("command", [])]
    assert len(mongos) == 3, "a three-member MongoDB replica set"
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["dask-worker"]["entrypoint"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    env = services["voxflow-worker"]["environment"]
    assert "replicaSet=rs0" in env["VOXFLOW_MONGO_URI"] and env["VOXFLOW_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"


def test_every_voxflow_command_in_compose_exists(compose: dict) -> None:
    commands = _cli_commands()
    used = {s["command"][0] for s in compose["services"].values() if s.get("image") == "voxflow:0.1.0" and "command" in s}
    assert used and used <= commands, f"compose runs voxflow commands that do not exist: {used - commands}"


def test_image_builds_from_files_that_exist(compose: dict) -> None:
    build = compose["services"]["dashboard"]["build"]
    dockerfile = (DEPLOYMENTS / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == DEPLOYMENTS / "Dockerfile"
    sources = re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE)
    for line in sources:
        for name in line.split():
            assert (REPO / name).exists(), f"the Dockerfile copies {name}, which is not in the repository"


def test_kubernetes_spec_and_cluster_class_wiring() -> None:
    spec = yaml.safe_load((DEPLOYMENTS / "kubernetes" / "dask-cluster.yaml").read_text())
    assert spec["kind"] == "DaskCluster" and spec["apiVersion"] == "kubernetes.dask.org/v1"
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert worker["image"] == "voxflow:0.1.0" and worker["command"][:2] == ["dask", "worker"]
    comment = (DEPLOYMENTS / "kubernetes" / "dask-cluster.yaml").read_text()
    class_path = re.search(r"VOXFLOW_DASK_CLUSTER_CLASS=(\S+)", comment).group(1)
    cls = resolve_cluster_class(class_path)
    assert cls.__name__ == "KubeCluster" and "custom_cluster_spec" in cls.__init__.__code__.co_varnames


def test_unknown_cluster_class_is_a_clear_error() -> None:
    with pytest.raises(ServiceError, match="cannot be imported"):
        resolve_cluster_class("no_such_package.Cluster")
    with pytest.raises(ServiceError, match="is not a Dask cluster class"):
        resolve_cluster_class("collections.OrderedDict")


def test_cluster_class_setting_is_what_the_flow_starts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, dask_cluster_class="distributed.LocalCluster",
                        dask_cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": ":0"})
    with dask_client(settings, warm_up=False) as client:
        assert type(client.cluster).__name__ == "LocalCluster"
        assert client.submit(sum, [1, 2, 3]).result() == 6
