"""Imported once by the forkserver that local Dask workers fork from (``dask_start_method="forkserver"``),
or by each worker's warm-up plugin where there is none (spawned workers, a remote cluster's).

The worker's code (:mod:`tasks.extract`: the feature stack, XGBoost) and numba's compiled kernels
cost a worker ~2.5 s of CPU to import and load. Loaded here, every worker forked afterwards starts
with them in memory and shares their pages: adaptive scaling from 2 to 4 workers takes 1.45 s
instead of 4.84 s on a 2-core machine, and a worker's private memory is 37 MiB instead of 189
(``bench/worker_start.py``).
"""

import sys
from contextlib import contextmanager
from typing import Iterator

from tasks.worker_logs import lost_heartbeats_in_one_line
from voxflow.garbage import imports_uncollected


@contextmanager
def _unimportable(module: str) -> Iterator[None]:
    """``import module`` raises ImportError inside the block (unless it is imported already)."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]  # Python's marker for "not importable"
    try:
        yield
    finally:
        del sys.modules[module]


with imports_uncollected():  # and frozen before the forks: no collection in a worker touches their pages
    import distributed  # noqa: F401

    # XGBoost imports scikit-learn (installed for librosa) for its estimator classes when it can:
    # ~0.6 s of imports (scipy.stats, pandas) that a worker scoring with a Booster never uses.
    with _unimportable("sklearn"):
        import xgboost  # noqa: F401  (imported lazily by models.artifact, so the flow process never pays for it)

    from features.extract import warm_up
    from tasks.chunk import rows_to_table
    from tasks.extract import score_chunk  # noqa: F401  (what a worker's first task would import)

    warm_up()
    rows_to_table([])  # pyarrow imports pandas the first time it converts Python values

lost_heartbeats_in_one_line()
