"""xgboost.dask training on the flows' own cluster (preloaded, forked workers) gives a booster like the in-process one."""

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from models.distributed import fit_booster_dask
from models.train import fit_booster
from tasks.cluster import dask_client
from voxflow.settings import Settings

pytestmark = pytest.mark.slow


def test_dask_booster_learns_the_signal_and_saves_as_ubj(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.7).astype(np.int32)
    features = rng.normal(size=(3000, 5))
    features[:, 2] += 1.5 * labels
    # The retrain flow's cluster: its workers imported XGBoost without scikit-learn (tasks/worker_preload.py).
    with dask_client(Settings(home=tmp_path, dask_min_workers=2, dask_max_workers=2)) as client:
        client.wait_for_workers(2, timeout=60)
        booster = fit_booster_dask(client, features, labels, params={"eta": 0.3}, rounds=30, chunk_rows=1000)
    scores = booster.predict(xgb.DMatrix(features, missing=np.nan))
    in_process = fit_booster(features, labels, params={"eta": 0.3}, rounds=30)
    local = in_process.predict(xgb.DMatrix(features, missing=np.nan))
    assert _monotone(booster) == _monotone(in_process) and "1" in _monotone(booster)  # the recipe's constraints travel too
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.3
    # Class weights as in-process: balanced classes, so the mean score sits near 0.5, not near 0.7.
    assert abs(scores.mean() - local.mean()) < 0.05 and abs(scores.mean() - 0.5) < 0.1
    assert len(booster.save_raw(raw_format="ubj")) > 0


def _monotone(booster: xgb.Booster) -> str:
    return json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]["monotone_constraints"]
