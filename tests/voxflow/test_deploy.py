"""Registering prefect.yaml's deployments (a flow file it names that does not exist stops everything first), and the
worker's handling of scheduled runs missed while no worker ran."""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from tests.voxflow_cli import REPO, run_cli
from voxflow import orchestration
from voxflow.deploy import DeploymentSpec, deploy_all, ensure_work_pool, register, superseded
from voxflow.errors import VoxflowError
from voxflow.settings import Settings


def test_a_missing_flow_file_is_an_error_before_anything_is_created(test_settings: Settings, tmp_path: Path) -> None:
    shutil.copy(REPO / "prefect.yaml", tmp_path / "prefect.yaml")
    (tmp_path / "flows").mkdir()
    shutil.copy(REPO / "flows" / "analyze.py", tmp_path / "flows" / "analyze.py")
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    with orchestration.prefect_api(test_settings):
        with pytest.raises(VoxflowError, match="names flow files that do not exist") as refused:
            deploy_all(work_pool=pool, timezone="UTC", root=tmp_path)
        with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
            client.read_work_pool(pool)
    for name in ("drain-queue (flows/drain.py)", "retrain-nightly (flows/retrain.py)", "backup-nightly (flows/backup.py)"):
        assert name in refused.value.reason
    assert "analyze-batch" not in refused.value.reason


def _run(minutes_ago: float, *, deployment: uuid.UUID | None, auto: bool = True, parameters: dict | None = None) -> FlowRun:
    now = datetime.now(timezone.utc)
    return FlowRun(
        name=f"run-{minutes_ago}", flow_id=uuid.uuid4(), deployment_id=deployment, auto_scheduled=auto,
        parameters=parameters or {}, expected_start_time=now - timedelta(minutes=minutes_ago),
    )


def test_only_the_newest_of_a_deployments_due_scheduled_runs_goes_ahead() -> None:
    drain, backup = uuid.uuid4(), uuid.uuid4()
    late = [_run(m, deployment=drain) for m in (5, 4, 3, 2, 1)]
    prefetched = _run(-0.1, deployment=backup)  # due in 6 s, alone of its kind
    by_hand = [_run(6, deployment=drain, auto=False), _run(7, deployment=None)]
    other_parameters = _run(8, deployment=drain, parameters={"linger_s": 30})
    pairs = superseded([*late, prefetched, *by_hand, other_parameters], datetime.now(timezone.utc))
    assert [(run.name, newer.name) for run, newer in pairs] == [(run.name, "run-1") for run in late[:-1]]
    # A newer run not due yet still supersedes the late ones; it is not itself cancelled.
    upcoming = _run(-0.1, deployment=drain)
    assert [newer.id for _, newer in superseded([*late, upcoming], datetime.now(timezone.utc))] == [upcoming.id] * 5


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_back_after_an_outage_runs_one_of_the_missed_scheduled_drains(cli_env: dict[str, str], test_settings: Settings) -> None:
    # Before, `voxflow worker` started every Late drain at once (one Python+Prefect process each), all but one to find the lock held.
    pool, name = f"pool-{uuid.uuid4().hex[:8]}", f"drain-{uuid.uuid4().hex[:8]}"
    spec = DeploymentSpec(name=name, entrypoint="flows/drain.py:drain_queue", schedules=({"interval": 60, "timezone": "UTC"},))
    with orchestration.prefect_api(test_settings), get_client(sync_client=True) as client:
        ensure_work_pool(pool)
        deployment_id = register(spec, work_pool=pool)
        try:
            now = datetime.now(timezone.utc)
            # The schedule's runs of the last 5 minutes, as the scheduler had created them while the worker was down.
            client._client.post(
                f"/deployments/{deployment_id}/schedule",
                json={"start_time": (now - timedelta(seconds=290)).isoformat(), "end_time": (now - timedelta(seconds=5)).isoformat(), "max_runs": 10},
            ).raise_for_status()
            worker = run_cli(["worker", "--run-once"], {**cli_env, "VOXFLOW_WORK_POOL": pool}, timeout=180)
            assert worker.returncode == 0, worker.stderr[-4000:]
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        finally:
            client.delete_deployment(deployment_id)
            client.delete_work_pool(pool)
    missed = sorted((run for run in runs if run.expected_start_time <= now), key=lambda run: run.expected_start_time)
    assert len(missed) >= 4 and all(run.auto_scheduled for run in missed)
    assert [run.state.type.value for run in missed] == ["CANCELLED"] * (len(missed) - 1) + ["COMPLETED"], [(r.name, r.state.name) for r in missed]
    assert {run.state.name for run in missed[:-1]} == {"Superseded"}
    assert all(f"superseded by scheduled run {missed[-1].name}" in run.state.message for run in missed[:-1])


@pytest.mark.slow
def test_an_api_trigger_cannot_name_the_dask_scheduler_of_analyze_batch(test_settings: Settings, prefect_api: str) -> None:
    # Was a parameter: a trigger could point the run, with its MongoDB and Redis credentials, at any host speaking Dask's pickles.
    pool, name = f"pool-{uuid.uuid4().hex[:8]}", f"analyze-{uuid.uuid4().hex[:8]}"
    with orchestration.prefect_api(test_settings), get_client(sync_client=True) as client:
        ensure_work_pool(pool)
        deployment_id = register(DeploymentSpec(name=name, entrypoint="flows/analyze.py:analyze_batch"), work_pool=pool)
        try:
            with httpx.Client(base_url=prefect_api, trust_env=False) as api:
                refused = api.post(f"/deployments/{deployment_id}/create_flow_run", json={"parameters": {"source": "/data", "dask_address": "tcp://10.0.0.7:8786"}})
                accepted = api.post(f"/deployments/{deployment_id}/create_flow_run", json={"parameters": {"source": "/data"}, "state": {"type": "CANCELLED"}})
        finally:
            client.delete_deployment(deployment_id)
            client.delete_work_pool(pool)
    assert refused.status_code == 409 and "'dask_address' was unexpected" in refused.text
    assert accepted.status_code == 201, accepted.text
