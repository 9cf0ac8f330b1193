"""What can be checked of the voxflow image from the text of deployments/Dockerfile (no Docker engine here):
which of the repository's files it holds where, and which copy of them its processes import and read."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import dask
import pytest
import yaml

from tasks.cluster import _worker_config, pre_spawn_environ
from voxflow import deploy
from voxflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = REPO / "deployments"
SITE_PACKAGES = PurePosixPath("/usr/local/lib/python3.11/site-packages")  # python:3.11-slim's
DASK_ROOT_CONFIG = PurePosixPath("/etc/dask")  # read by every dask process unless DASK_ROOT_CONFIG says otherwise


@dataclass(frozen=True)
class Image:
    """What a Dockerfile says of its image: the repository's files it holds, by their path there, its
    last working directory, environment and RUN commands."""

    files: dict[PurePosixPath, Path]
    workdir: PurePosixPath
    env: dict[str, str]
    runs: list[str]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of each instruction, continued lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in joined.splitlines() if line.strip()]


def _copied(source: Path, dest: PurePosixPath, *, into: bool) -> dict[PurePosixPath, Path]:
    """The image paths of what ``COPY source dest`` copies: a folder's contents go into ``dest``, a file
    into it (``into``: ``dest`` ends with / or takes several sources) or to it."""
    if source.is_dir():
        return {dest / path.relative_to(source).as_posix(): path for path in source.rglob("*") if path.is_file()}
    return {dest / source.name if into else dest: source}


def read_dockerfile(path: Path) -> Image:
    """The :class:`Image` that the Dockerfile at ``path`` builds from the repository."""
    image = Image(files={}, workdir=PurePosixPath("/"), env={}, runs=[])
    for instruction, args in _instructions(path.read_text()):
        if instruction == "WORKDIR":
            image = replace(image, workdir=image.workdir / args)
        elif instruction == "ENV":
            image.env.update(item.split("=", 1) for item in shlex.split(args))
        elif instruction == "COPY":
            *sources, dest = args.split()
            for source in sources:
                image.files.update(_copied(REPO / source, image.workdir / dest, into=dest.endswith("/") or len(sources) > 1))
        elif instruction == "RUN":
            image.runs.append(args)
    return image


def import_root(image: Image) -> PurePosixPath:
    """Where the image's processes import voxflow's packages from: the copied tree where it is installed
    editable (``pip install -e .``, run in the working directory), else pip's own copy in site-packages."""
    def editable(run: str) -> bool:
        words = shlex.split(run)
        return any(flag in ("-e", "--editable") and target.split("[")[0] == "." for flag, target in zip(words, words[1:]))

    return image.workdir if any(editable(run) for run in image.runs) else SITE_PACKAGES


@pytest.fixture(scope="module")
def image() -> Image:
    return read_dockerfile(DEPLOYMENTS / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())


def test_voxflow_deploy_finds_prefect_yaml_and_the_flows_in_the_image(image: Image) -> None:
    deploy_py = Path(deploy.__file__).resolve()
    in_image = import_root(image) / deploy_py.relative_to(REPO).as_posix()
    assert in_image in image.files, f"the image imports voxflow from {in_image.parent}, where the Dockerfile copies none of it"
    # voxflow/deploy.py's PROJECT_ROOT, as it resolves there.
    project_root = in_image.parents[len(deploy_py.relative_to(deploy.PROJECT_ROOT).parts) - 1]
    for name in ["prefect.yaml", *(spec.entrypoint_file for spec in deploy.load_specs("UTC"))]:
        assert project_root / name in image.files, f"voxflow deploy in the image needs {project_root / name}"


def test_workers_import_the_features_whose_numba_kernels_the_image_compiled(image: Image) -> None:
    warm_up = [run for run in image.runs if "warm_up()" in run]
    # `python -c` imports from its working directory first: the kernels are compiled for WORKDIR/features.
    assert len(warm_up) == 1 and warm_up[0].startswith("python -c ")
    assert import_root(image) == image.workdir, "numba's cache is keyed by source path: workers would compile their own"


def test_numba_cache_of_the_image_is_the_one_workers_read(image: Image, compose: dict) -> None:
    cache = PurePosixPath(image.env["NUMBA_CACHE_DIR"])
    services = [s for s in compose["services"].values() if s.get("image") == "voxflow:0.1.0"]
    mounted = {PurePosixPath(volume.split(":")[1]) for s in services for volume in s.get("volumes", [])}
    assert not [m for m in mounted if cache.is_relative_to(m)], f"a compose volume hides the image's {cache}"
    cluster = yaml.safe_load((DEPLOYMENTS / "kubernetes" / "dask-cluster.yaml").read_text())["spec"]
    containers = [c for part in ("worker", "scheduler") for c in cluster[part]["spec"]["containers"]]
    overridden = [e for c in containers for e in c.get("env", []) if e["name"] == "NUMBA_CACHE_DIR"]
    overridden += [s for s in services if "NUMBA_CACHE_DIR" in (s.get("environment") or {})]
    assert not overridden, "NUMBA_CACHE_DIR set over the image's: every new worker compiles the kernels again"


def test_the_cluster_spec_path_operators_are_given_is_in_the_image(image: Image) -> None:
    spec = DEPLOYMENTS / "kubernetes" / "dask-cluster.yaml"
    for told in (spec, REPO / "README.md"):
        paths = re.findall(r'"custom_cluster_spec": "([^"]+)"', told.read_text())
        assert paths, f"{told.name} names no custom_cluster_spec"
        assert {image.files.get(PurePosixPath(path)) for path in paths} == {spec}, f"{told.name}: {paths} not in the image"


def _nanny_config(dask_root_config: Path) -> dict:
    """What a nanny started with ``dask_root_config`` as /etc/dask sets in its workers' environment,
    and whether they profile; the environment holds none of the variables Dask's config sets."""
    probe = (
        "import dask, distributed, json; from distributed.nanny import _get_env_variables; "
        "print(json.dumps({'environ': _get_env_variables('distributed.nanny.pre-spawn-environ'),"
        " 'profile': dask.config.get('distributed.worker.profile.enabled')}))"
    )
    dask_set = set(dask.config.get("distributed.nanny.pre-spawn-environ"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_") and k not in dask_set}
    done = subprocess.run([sys.executable, "-c", probe], env={**env, "DASK_ROOT_CONFIG": str(dask_root_config)},
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def test_the_images_dask_workers_get_the_config_tasks_cluster_gives_voxflows_own(image: Image, tmp_path: Path) -> None:
    shipped = {path: source for path, source in image.files.items() if path.parent == DASK_ROOT_CONFIG}
    assert shipped, f"the image has no Dask config in {DASK_ROOT_CONFIG}"
    (tmp_path / "etc").mkdir()
    for path, source in shipped.items():
        shutil.copy(source, tmp_path / "etc" / path.name)
    with _worker_config(Settings(home=tmp_path / "home", dask_start_method="spawn")):
        profile = dask.config.get("distributed.worker.profile.enabled")
    expected = {"environ": {name: str(value) for name, value in pre_spawn_environ().items()}, "profile": profile}
    assert _nanny_config(tmp_path / "etc") == expected


def test_the_image_compiles_the_bytecode_make_venv_compiles(image: Image) -> None:
    # PYTHONDONTWRITEBYTECODE with nothing compiled: every worker start compiled voxflow's modules again.
    packages = re.search(r"-m compileall -q ([\w ]+)", (REPO / "Makefile").read_text()).group(1).split()
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert any(re.search(r"python -m compileall -q " + " ".join(packages) + r"(\s|$)", run) for run in image.runs), image.runs


def test_the_dashboards_dask_link_is_the_schedulers_published_port(compose: dict) -> None:
    # The link was the scheduler's network name (http://dask-scheduler:8787/status), which no browser on the host resolves.
    host, port, _ = compose["services"]["dask-scheduler"]["ports"][0].split(":")
    assert compose["services"]["dashboard"]["environment"]["DASK_DISTRIBUTED__DASHBOARD__LINK"] == f"http://{host}:{port}/status"
