"""Chunk planning (pure), and the fan-out on a real in-process Dask cluster with the real stores."""

from __future__ import annotations

import dataclasses
import logging
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import soundfile as sf
from distributed import Client, Future, LocalCluster
from distributed.scheduler import KilledWorker
import hypothesis
from hypothesis import given
from hypothesis import strategies as st
from pymongo.database import Database

import tasks.fanout
from features.schema import FEATURE_VERSION
from features.synth import synth_vowel
from models.artifact import ModelBundle
from store.feature_store import FeatureStore
from tasks.chunk import AudioPolicy, score_on_worker
from tasks.fanout import MIN_CHUNK, ChunkPlan, FanoutOutcome, fan_out
from tasks.ingest import FileRef, discover
from tasks.model_registry import load_champion
from tasks.persist import Stores, open_stores
from tasks.scaling import ScalingMonitor
from voxflow.errors import ClusterError
from voxflow.scaling import Bounds, Thresholds
from voxflow.settings import Settings


def plan_chunks(files: list[int], *, max_chunk: int, workers: int) -> list[list[int]]:
    """Every chunk of a plan, cut for a cluster of ``workers`` single-threaded workers throughout."""
    plan, chunks = ChunkPlan(files, max_chunk=max_chunk), []
    while plan:
        chunks.append(plan.cut(workers))
    return chunks


def test_large_batches_use_the_configured_chunk_then_taper() -> None:
    sizes = [len(chunk) for chunk in plan_chunks(list(range(10_000)), max_chunk=48, workers=4)]
    assert sizes[:200] == [48] * 200
    tail = sizes[sizes.index(next(s for s in sizes if s < 48)) :]
    assert tail == sorted(tail, reverse=True)  # shrinking toward the end
    assert tail[-2] == MIN_CHUNK


def test_the_last_round_leaves_no_worker_a_long_chunk_alone() -> None:
    # 500 files on 2 workers: the old fixed 48-file chunks ended on a lone chunk of ~2 s.
    sizes = [len(chunk) for chunk in plan_chunks(list(range(500)), max_chunk=48, workers=2)]
    assert max(sizes[-4:]) <= MIN_CHUNK


def test_small_batches_spread_over_every_worker() -> None:
    assert [len(c) for c in plan_chunks(list(range(45)), max_chunk=48, workers=2)] == [12, 9, 6, 5, 4, 4, 4, 1]
    assert plan_chunks([7], max_chunk=48, workers=16) == [[7]]
    assert plan_chunks([], max_chunk=48, workers=2) == []


@hypothesis.settings(deadline=None)  # a pure function, but 3,000 items on a loaded CI core can pass 200 ms
@given(n=st.integers(0, 3_000), max_chunk=st.integers(1, 200), workers=st.integers(1, 32))
def test_chunks_cover_the_batch_in_order_within_bounds(n: int, max_chunk: int, workers: int) -> None:
    chunks = plan_chunks(list(range(n)), max_chunk=max_chunk, workers=workers)
    assert [item for chunk in chunks for item in chunk] == list(range(n))
    assert all(1 <= len(chunk) <= max_chunk for chunk in chunks)
    assert all(len(chunk) >= min(MIN_CHUNK, max_chunk) for chunk in chunks[:-1])


def test_a_chunk_size_below_one_is_refused() -> None:
    for max_chunk in (0, -1):
        with pytest.raises(ValueError, match="max_chunk must be at least 1"):
            ChunkPlan([1, 2, 3], max_chunk=max_chunk)


def test_each_chunk_is_cut_for_the_slots_the_cluster_has_then() -> None:
    # An existing cluster's workers come and go: the chunks left follow the slots it has when each is cut.
    plan = ChunkPlan(list(range(100)), max_chunk=48)
    assert len(plan.cut(1)) == 48  # plenty left: a full chunk
    assert len(plan.cut(4)) == 7  # 52 left over 2 x 4 slots
    assert len(plan.cut(1)) == 23  # 45 left over 2 x 1 slot
    assert plan.cut(16)[0] == 78 and len(plan) == 18


@pytest.fixture
def stores(test_settings: Settings, mongo_db: Database, tmp_path: Path) -> Iterator[Stores]:
    """The real stores on this test's own database, with a feature store of its own."""
    with open_stores(test_settings.model_copy(update={"mongo_db": mongo_db.name})) as opened:
        yield dataclasses.replace(opened, features=FeatureStore(tmp_path / "features"))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _clips(folder: Path, n: int) -> list[FileRef]:
    folder.mkdir()
    for i in range(n):
        sf.write(folder / f"clip{i}.wav", synth_vowel(f0_hz=100 + 7 * i, duration_s=1.0, sr=16_000, seed=i), 16_000)
    return discover(str(folder), max_file_bytes=10_000_000).files


def _fan_out(client: Client, batches: list[list[FileRef]], stores: Stores, run_id: str, *, max_chunk: int) -> list[FanoutOutcome]:
    """Fan out each batch in turn, as a queue drain does: one run, one cluster, one model bundle."""
    settings = Settings(home=Path("/nonexistent"))
    bundle = load_champion(stores.models, settings.models_dir)
    thresholds = Thresholds.from_settings(settings)
    monitor = ScalingMonitor(client, results=stores.results, metrics=stores.metrics, thresholds=thresholds, run_id=run_id, bounds=Bounds(1, 1))
    return [
        fan_out(
            client, batch, max_chunk=max_chunk, policy=AudioPolicy.from_settings(settings), bundle=bundle,
            stores=stores, run_id=run_id, monitor=monitor, on_progress=lambda *_: None,
        )
        for batch in batches
    ]


def test_a_failing_chunk_is_split_and_only_its_poisonous_file_quarantined(
    client: Client, stores: Stores, mongo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    files = _clips(tmp_path / "clips", 6)
    files[4] = dataclasses.replace(files[4], subject_id="P5", label="pathological")
    poison = files[4].path

    def crash_on_poison(chunk_id: int, chunk: list[FileRef], policy: AudioPolicy, model: ModelBundle) -> object:
        if any(ref.path == poison for ref in chunk):
            raise KilledWorker("stand-in for a crash in native code", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)  # 4 workers died on it
        return score_on_worker(chunk_id, chunk, policy, model)

    monkeypatch.setattr(tasks.fanout, "score_on_worker", crash_on_poison)
    [outcome] = _fan_out(client, [files], stores, "run-poison", max_chunk=3)
    assert (outcome.inserted, outcome.quarantined) == (5, 1)
    assert sorted(doc["path"] for doc in mongo_db.predictions.find()) == sorted(ref.path for ref in files if ref.path != poison)
    [record] = mongo_db.quarantine.find({"run_id": "run-poison"})
    assert (record["path"], record["stage"], record["error_class"]) == (poison, "worker", "KilledWorker")
    assert (record["subject_id"], record["reference_label"]) == ("P5", "pathological")
    assert "stand-in for a crash in native code" in record["reason"]
    # Said as it happens (the run's log too): the split, then the file found.
    said = [r.getMessage() for r in caplog.records if r.name == "tasks.fanout" and r.levelno == logging.WARNING]
    assert said == [
        "A chunk of 3 files killed the 4 Dask workers that ran it (the last at tcp://127.0.0.1:1): scoring its files one by one to find the one that does",
        f"{poison} killed the 4 Dask workers that ran it: quarantined (stage worker), the batch goes on",
    ], said


def test_a_task_error_no_file_caused_fails_the_fan_out_and_quarantines_nothing(
    client: Client, stores: Stores, mongo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scheduler or workers without voxflow: every chunk failed, was split, and every file was quarantined.
    files = _clips(tmp_path / "clips", 4)

    def voxflow_missing(chunk_id: int, chunk: list[FileRef], policy: AudioPolicy, model: ModelBundle) -> object:
        raise ModuleNotFoundError("No module named 'tasks'")

    monkeypatch.setattr(tasks.fanout, "score_on_worker", voxflow_missing)
    with pytest.raises(ClusterError, match=r"cannot run voxflow's tasks \(ModuleNotFoundError: No module named 'tasks'\): install voxflow"):
        _fan_out(client, [files], stores, "run-no-voxflow", max_chunk=2)
    assert mongo_db.quarantine.count_documents({}) == 0 and mongo_db.predictions.count_documents({}) == 0


def test_chunks_cancelled_with_the_lost_model_are_scored_with_a_new_copy(
    client: Client, stores: Stores, mongo_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every worker lost at once: the scheduler lost the model and cancelled the chunks depending on it, and the run failed.
    files = _clips(tmp_path / "clips", 4)
    submit, lost = client.submit, []

    def submit_then_lose_the_model(function: object, chunk_id: int, chunk: list[FileRef], policy: AudioPolicy, model: Future, **kwargs: object) -> Future:
        future = submit(function, chunk_id, chunk, policy, model, **kwargs)
        if not lost:
            lost.append(model.key)
            client.cancel([model])  # as the scheduler does once the workers holding it are gone
        return future

    monkeypatch.setattr(client, "submit", submit_then_lose_the_model)
    [outcome] = _fan_out(client, [files], stores, "run-lost-model", max_chunk=2)
    assert lost and (outcome.inserted, outcome.quarantined) == (4, 0)
    assert mongo_db.predictions.count_documents({}) == 4


def test_a_scheduler_without_workers_ends_the_fan_out_with_one_error(stores: Stores, tmp_path: Path) -> None:
    files = _clips(tmp_path / "clips", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, Client(cluster, timeout="2s") as idle:
        with pytest.raises(ClusterError, match=f"the Dask scheduler at {cluster.scheduler_address} has no workers"):
            _fan_out(idle, [files], stores, "run-no-workers", max_chunk=2)


def test_fan_outs_of_one_run_keep_every_chunks_features(client: Client, stores: Stores, tmp_path: Path) -> None:
    files = _clips(tmp_path / "clips", 8)
    # Back to back, the second fan-out's model copy used to share its key with the one the first had just released.
    outcomes = _fan_out(client, [files[:4], files[4:]], stores, "run-batches", max_chunk=2)
    assert [outcome.inserted for outcome in outcomes] == [4, 4]
    stored = stores.features.read(feature_version=FEATURE_VERSION, columns=["audio_sha256"])
    assert sorted(stored["audio_sha256"]) == sorted(ref.sha256 for ref in files)


def test_a_ctrl_c_during_the_models_scatter_takes_effect_once_the_workers_have_it(
    client: Client, stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Interrupted, the scatter went on in the client's thread while the command closed the client and the cluster:
    # the scheduler logged losing the model, or failed to replicate it to a closing worker, with tracebacks.
    files = _clips(tmp_path / "clips", 2)
    scatter, scattered = client.scatter, []

    def ctrl_c_meanwhile(*args: object, **kwargs: object) -> object:
        signal.raise_signal(signal.SIGINT)  # a terminal's Ctrl-C, as the scatter starts
        model = scatter(*args, **kwargs)
        scattered.append(model.status)
        return model

    monkeypatch.setattr(client, "scatter", ctrl_c_meanwhile)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _fan_out(client, [files], stores, "run-ctrl-c", max_chunk=2)
    assert scattered == ["finished"]  # the KeyboardInterrupt came once the scatter was over
    assert signal.getsignal(signal.SIGINT) is handler

