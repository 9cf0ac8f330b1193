"""Register the deployments that ``prefect.yaml`` defines, and run a process worker that executes them.

``prefect.yaml`` stays the one definition: ``voxflow deploy`` reads it, sets each schedule's time zone
from settings, and registers through Prefect's Python API with the same names, entrypoints, schedules,
parameters and pull step (the project root as working directory) that ``prefect deploy --all`` gives;
unlike that one, its parameter schemas refuse a parameter the flow does not take. The worker runs, of the
scheduled runs of one deployment that are due together (missed while no worker ran), only the newest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate, WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, FlowRun
from prefect.client.schemas.responses import SetStateStatus, WorkerFlowRunResponse
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Interval, Schedule
from prefect.states import Cancelled
from prefect.workers.process import ProcessWorker

from voxflow.errors import VoxflowError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
# How long a stopping worker waits for its flow runs to record their interruption (Prefect's own kill grace).
FLOW_RUN_GRACE_S = 30.0


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of ``prefect.yaml``, its schedules already in the configured time zone."""

    name: str
    entrypoint: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    concurrency_limit: dict[str, Any] | None = None

    @property
    def entrypoint_file(self) -> str:
        return self.entrypoint.rpartition(":")[0]


@dataclass
class DeployReport:
    """What ``deploy_all`` did: the pool, and deployment ids by name."""

    work_pool: str
    pool_created: bool
    deployed: dict[str, str] = field(default_factory=dict)


def deployment_specs(config: dict[str, Any], *, timezone: str) -> list[DeploymentSpec]:
    """The deployments of a parsed ``prefect.yaml``, every schedule set to ``timezone``.

    Examples
    --------
    >>> config = {"deployments": [{"name": "b", "entrypoint": "f.py:b", "schedules": [{"cron": "0 2 * * *", "timezone": "UTC"}]}]}
    >>> deployment_specs(config, timezone="Europe/Paris")[0].schedules
    ({'cron': '0 2 * * *', 'timezone': 'Europe/Paris'},)
    """
    return [
        DeploymentSpec(
            name=item["name"],
            entrypoint=item["entrypoint"],
            description=item.get("description", ""),
            parameters=dict(item.get("parameters") or {}),
            schedules=tuple({**schedule, "timezone": timezone} for schedule in item.get("schedules") or ()),
            concurrency_limit=item.get("concurrency_limit"),
        )
        for item in config.get("deployments") or ()
    ]


def prefect_schedule(spec: dict[str, Any]) -> Schedule:
    """A Prefect schedule from one ``prefect.yaml`` schedule entry (``cron`` or ``interval`` in seconds)."""
    if "cron" in spec:
        return Cron(spec["cron"], timezone=spec.get("timezone"))
    if "interval" in spec:
        return Interval(timedelta(seconds=float(spec["interval"])), timezone=spec.get("timezone"))
    raise VoxflowError(f"unsupported schedule in prefect.yaml (use cron or interval): {spec}")


def load_specs(timezone: str, *, path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Read ``prefect.yaml`` and return its deployments in ``timezone``."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise VoxflowError(f"cannot read {path}: {exc}") from exc
    return deployment_specs(config or {}, timezone=timezone)


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool ``name`` unless it exists; True when it was created."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created process work pool %s", name)
            return True


def closed_parameter_schema(flow: Flow) -> dict[str, Any]:
    """``flow``'s parameter schema, refusing parameters the flow does not take.

    Prefect's own lets them through: the run is created, then crashes with SignatureMismatchError.
    """
    return {**flow.parameters.model_dump(exclude_unset=True), "additionalProperties": False}


def register(spec: DeploymentSpec, *, work_pool: str, root: Path = PROJECT_ROOT) -> str:
    """Register one deployment whose flow runs start in ``root``, its parameters checked by
    :func:`closed_parameter_schema`; returns its id."""
    flow = Flow.from_source(source=str(root), entrypoint=spec.entrypoint)
    limit = spec.concurrency_limit
    deployment = flow.to_deployment(
        name=spec.name,
        work_pool_name=work_pool,
        schedules=[prefect_schedule(s) for s in spec.schedules],
        parameters=spec.parameters,
        description=spec.description,
        concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
    )
    deployment_id = deployment.apply()
    # Set after registering: the schema that apply() sends has no place for additionalProperties.
    with get_client(sync_client=True) as client:
        client.update_deployment(deployment_id, DeploymentUpdate(parameter_openapi_schema=closed_parameter_schema(flow)))
    return str(deployment_id)


def deploy_all(*, work_pool: str, timezone: str, root: Path = PROJECT_ROOT) -> DeployReport:
    """Create the work pool if missing and register every deployment of ``root/prefect.yaml``.

    Raises
    ------
    VoxflowError
        When a deployment's flow file is not in ``root`` (before anything is created).
    """
    specs = load_specs(timezone, path=root / "prefect.yaml")
    missing = [f"{spec.name} ({spec.entrypoint_file})" for spec in specs if not (root / spec.entrypoint_file).is_file()]
    if missing:
        raise VoxflowError(f"{root / 'prefect.yaml'} names flow files that do not exist: {', '.join(missing)}")
    report = DeployReport(work_pool=work_pool, pool_created=ensure_work_pool(work_pool))
    for spec in specs:
        report.deployed[spec.name] = register(spec, work_pool=work_pool, root=root)
        log.info("registered deployment %s (%s)", spec.name, report.deployed[spec.name])
    return report


def _kind(run: FlowRun) -> tuple[Any, str]:
    return run.deployment_id, json.dumps(run.parameters, sort_keys=True, default=str)


def superseded(runs: list[FlowRun], now: datetime) -> list[tuple[FlowRun, FlowRun]]:
    """The scheduled runs among ``runs`` that a newer scheduled run of the same deployment, with the same
    parameters, supersedes: (run, the newest of its kind) for each due by ``now``.

    A worker that comes back after an outage finds every run its schedules left Late; they would all
    start at once, to do the same thing (a drain a minute, after hours: hundreds of processes).
    Runs triggered by hand or over the API are never superseded.
    """
    scheduled = sorted(
        (run for run in runs if run.auto_scheduled and run.deployment_id and run.expected_start_time), key=lambda run: run.expected_start_time
    )
    kinds = [(_kind(run), run) for run in scheduled]
    newest = dict(kinds)  # the last of each kind: the newest
    return [(run, newest[kind]) for kind, run in kinds if run.id != newest[kind].id and run.expected_start_time <= now]


class VoxflowWorker(ProcessWorker):
    """A process worker that cancels, instead of starting, the scheduled runs :func:`superseded` names."""

    @classmethod
    def __dispatch_key__(cls) -> str:
        return "voxflow-process"  # its pools' type stays "process"; this key only keeps Prefect's ProcessWorker registered as theirs

    async def _get_scheduled_flow_runs(self) -> list[WorkerFlowRunResponse]:
        responses = await super()._get_scheduled_flow_runs()
        skipped: set[Any] = set()
        for run, newer in superseded([r.flow_run for r in responses], datetime.now(timezone.utc)):
            state = Cancelled(name="Superseded", message=f"superseded by scheduled run {newer.name} ({newer.id}), due {newer.expected_start_time:%Y-%m-%d %H:%M:%S %Z}")
            try:
                result = await self.client.set_flow_run_state(run.id, state)
            except Exception as exc:  # the run goes ahead as before; its flow's own lock keeps it harmless
                self._logger.warning("Could not cancel superseded scheduled run %s: %s", run.name, exc)
                continue
            if result.status == SetStateStatus.ACCEPT:
                skipped.add(run.id)
                self._logger.info("Skipped late scheduled run %s (%s): %s", run.name, run.id, state.message)
        return [response for response in responses if response.flow_run.id not in skipped]


def run_worker(work_pool: str, *, run_once: bool = False) -> None:
    """Run a process worker for ``work_pool`` in this process (flow runs become child processes).

    With ``run_once`` it submits the runs due now, waits for them and returns. Scheduled runs missed while no
    worker ran start once per deployment: the newest, the others cancelled as superseded.
    """

    async def work() -> None:
        async with VoxflowWorker(work_pool_name=work_pool) as worker:
            await worker.start(run_once=run_once, printer=log.info)

    asyncio.run(work())


def end_flow_runs(grace_s: float = FLOW_RUN_GRACE_S) -> None:
    """SIGTERM to this worker's flow-run processes, then wait up to ``grace_s`` for them to end.

    For a worker asked to stop: each flow run records itself interrupted (its ``runs`` document, and Crashed in
    Prefect) while the worker still relays its output and reports, before the worker's own teardown, which
    would otherwise end with them mid-way: a flow run whose worker has gone loses its output pipe and dies
    without a word, its records left Running.
    """
    children = psutil.Process().children()
    for child in children:
        try:
            child.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=grace_s)
