"""Feature extraction for training (tasks/training_data.py) on a cluster that has no worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf
from distributed import Client, LocalCluster

from features.synth import synth_vowel
from tasks.ingest import Candidate, FileRef, hash_candidate
from tasks.training_data import extract_on_cluster
from voxflow.errors import ClusterError
from voxflow.settings import Settings


@pytest.mark.timeout(60)  # the code before waited forever
def test_extraction_on_a_cluster_without_workers_is_one_error_not_a_wait_forever(tmp_path: Path) -> None:
    # train, evaluate and retrain submitted their chunks and waited for them, with no worker to run them: forever, silent.
    sf.write(tmp_path / "a.wav", synth_vowel(f0_hz=120, duration_s=1.0, sr=16_000, seed=1), 16_000)
    ref = hash_candidate(Candidate(tmp_path / "a.wav"), max_bytes=10**8)
    assert isinstance(ref, FileRef)
    settings = Settings(home=tmp_path, dask_worker_start_timeout_s=1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        began = time.monotonic()
        with pytest.raises(ClusterError, match=rf"^the Dask scheduler at {cluster.scheduler_address} has no workers: none joined within 1 s"):
            list(extract_on_cluster(client, [ref], settings))
        assert time.monotonic() - began < 5
