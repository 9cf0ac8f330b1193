"""xgboost.dask training on a LocalCluster gives a booster like the in-process one."""

import json

import numpy as np
import pytest
import xgboost as xgb
from distributed import Client, LocalCluster

from models.distributed import fit_booster_dask
from models.train import fit_booster

pytestmark = pytest.mark.slow


def test_dask_booster_learns_the_signal_and_saves_as_ubj() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.7).astype(np.int32)
    features = rng.normal(size=(3000, 5))
    features[:, 2] += 1.5 * labels
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
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
