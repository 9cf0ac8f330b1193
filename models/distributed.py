"""Fit the screening booster across a Dask cluster (``xgboost.dask``) when the data is too large for one process."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask as dxgb
from distributed import Client

from models.train import DEFAULT_ROUNDS, booster_params


def fit_booster_dask(
    client: Client,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    params: dict | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    chunk_rows: int = 50_000,
) -> xgb.Booster:
    """Same model as :func:`models.train.fit_booster` (same params, class weights and monotone constraints), trained by the workers.

    Parameters
    ----------
    client : distributed.Client
        The flow's Dask client; each worker trains on its partitions (Rabit allreduce).
    features : np.ndarray, shape (n, d)
    labels : np.ndarray, shape (n,)
    chunk_rows : int
        Rows per Dask partition.
    """
    labels = np.asarray(labels, dtype=np.int32)
    merged = booster_params(features, labels, params=params, seed=seed)
    merged.pop("nthread", None)  # each worker uses its own threads
    x = da.from_array(np.asarray(features, dtype=np.float64), chunks=(chunk_rows, -1))
    y = da.from_array(labels, chunks=chunk_rows)
    matrix = dxgb.DaskDMatrix(client, x, y, missing=np.nan)
    return dxgb.train(client, merged, matrix, num_boost_round=rounds)["booster"]
