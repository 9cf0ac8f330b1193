"""Feature extraction for training (tasks/training_data.py): a cluster without workers, a file that kills them."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
from distributed import Client, LocalCluster
from distributed.scheduler import KilledWorker

import tasks.training_data
from features.synth import synth_vowel
from tasks.chunk import AudioPolicy
from tasks.extract import extract_chunk
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


def test_a_file_that_kills_its_workers_is_rejected_and_the_rest_extracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its KilledWorker ended the whole train or retrain: one bad recording among thousands stopped it.
    refs = []
    for i in range(5):
        sf.write(tmp_path / f"c{i}.wav", synth_vowel(f0_hz=110 + 20 * i, duration_s=1.0, sr=16_000, seed=i), 16_000)
        ref = hash_candidate(Candidate(tmp_path / f"c{i}.wav"), max_bytes=10**8)
        assert isinstance(ref, FileRef)
        refs.append(ref)
    poison = refs[3].path

    def crash_on_poison(chunk: list[FileRef], policy: AudioPolicy) -> object:
        if any(ref.path == poison for ref in chunk):
            raise KilledWorker("stand-in for a crash in native code", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)
        return extract_chunk(chunk, policy)

    monkeypatch.setattr(tasks.training_data, "extract_chunk", crash_on_poison)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        results = list(extract_on_cluster(client, refs, Settings(home=tmp_path, chunk_size=2)))
    rows = [row for chunk_rows, _ in results for row in chunk_rows]
    [rejected] = [record for _, chunk_rejected in results for record in chunk_rejected]
    assert sorted(row["path"] for row in rows) == sorted(ref.path for ref in refs if ref.path != poison)
    assert (rejected["path"], rejected["stage"], rejected["audio_sha256"]) == (poison, "worker", refs[3].sha256)
    assert "stand-in for a crash in native code" in rejected["reason"]
