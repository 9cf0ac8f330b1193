"""Registering prefect.yaml's deployments: a flow file it names that does not exist stops everything first."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from tests.voxflow_cli import REPO
from voxflow import orchestration
from voxflow.deploy import deploy_all
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
