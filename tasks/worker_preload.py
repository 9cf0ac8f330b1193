"""Imported once by the forkserver that local Dask workers fork from (``dask_start_method="forkserver"``),
or by each worker's warm-up plugin where there is none (spawned workers, a remote cluster's).

The feature stack, XGBoost and numba's compiled kernels cost a worker ~2 s of CPU to import and load.
Loaded here, every worker forked afterwards starts with them in memory and shares their pages:
adaptive scaling from 2 to 4 workers takes 1.4 s instead of 3.9 s on a 2-core machine, and a
worker's private memory is 52 MiB instead of 198 (``bench/worker_start.py``).
"""

from voxflow.garbage import imports_uncollected

with imports_uncollected():  # and frozen before the forks: no collection in a worker touches their pages
    import distributed  # noqa: F401
    import xgboost  # noqa: F401  (imported lazily by models.artifact, so the flow process never pays for it)

    from features.extract import warm_up

    warm_up()
