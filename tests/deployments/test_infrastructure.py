"""What can be checked here of the compose file, the image and the Kubernetes cluster spec (no Docker engine, no cluster)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from distributed.cli import dask_worker
from distributed.deploy.utils import nprocesses_nthreads

from tasks.cluster import dask_client, resolve_cluster_class, run_cluster_kwargs
from voxflow.cli import build_parser
from voxflow.errors import ServiceError
from voxflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = REPO / "deployments"
KUBERNETES_SPEC = DEPLOYMENTS / "kubernetes" / "dask-cluster.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())


def _worker_layout(args: list[str], cpu_count: int) -> tuple[int, int]:
    """(processes, threads each) that ``dask worker *args`` starts on ``cpu_count`` CPUs, its options
    parsed by distributed's CLI and resolved as distributed/cli/dask_worker.py does."""
    options = dask_worker.main.make_context("dask worker", args).params
    processes, threads = options["n_workers"], options["nthreads"]
    if processes == "auto":
        processes, threads = nprocesses_nthreads(cpu_count)
    processes = int(processes or 1)
    if processes < 0:
        processes += cpu_count + 1
    return processes, threads or cpu_count // processes


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


@pytest.mark.parametrize("cpu_count", [2, 8, 32])
def test_dask_workers_are_single_threaded_processes_one_per_cpu(compose: dict, cpu_count: int) -> None:
    service = compose["services"]["dask-worker"]
    assert _worker_layout(service["entrypoint"][2:], cpu_count) == (cpu_count, 1)
    assert service.get("deploy", {}).get("replicas", 1) == 1, "each replica starts a worker per CPU of the whole host"
    worker = yaml.safe_load(KUBERNETES_SPEC.read_text())["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["cpu"] == "1" and _worker_layout(worker["command"][2:], cpu_count) == (1, 1)


def test_services_wait_until_what_they_depend_on_is_ready(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: a depends_on list waits only for the containers to start"
        for dependency, how in depends.items():
            # restart "no" marks a one-shot service (mongo-init): ready once it has exited 0.
            one_shot = services[dependency].get("restart") == "no"
            assert one_shot or "healthcheck" in services[dependency], f"{name} depends on {dependency}, which has no healthcheck"
            ready = "service_completed_successfully" if one_shot else "service_healthy"
            assert how.get("condition") == ready, f"{name} should wait for {dependency}: {ready}"


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


def _cluster_class_path() -> str:
    """The cluster class the spec's comment tells an operator to set."""
    return re.search(r"VOXFLOW_DASK_CLUSTER_CLASS=(\S+)", KUBERNETES_SPEC.read_text()).group(1)


def test_kubernetes_spec_and_cluster_class_wiring() -> None:
    spec = yaml.safe_load(KUBERNETES_SPEC.read_text())
    assert spec["kind"] == "DaskCluster" and spec["apiVersion"] == "kubernetes.dask.org/v1"
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert worker["image"] == "voxflow:0.1.0" and worker["command"][:2] == ["dask", "worker"]
    cls = resolve_cluster_class(_cluster_class_path())
    assert cls.__name__ == "KubeCluster" and "custom_cluster_spec" in inspect.signature(cls).parameters  # what run_cluster_kwargs checks


def test_every_run_names_its_kubernetes_cluster_its_own_valid_way() -> None:
    validation = pytest.importorskip("dask_kubernetes.operator.validation")
    cls = resolve_cluster_class(_cluster_class_path())
    specs = [run_cluster_kwargs(cls, {"custom_cluster_spec": str(KUBERNETES_SPEC)})["custom_cluster_spec"] for _ in range(2)]
    names = [spec["metadata"]["name"] for spec in specs]
    assert names[0] != names[1]
    for spec, name in zip(specs, names):
        validation.validate_cluster_name(name)
        assert spec["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == name


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
