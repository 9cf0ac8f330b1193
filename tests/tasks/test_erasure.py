"""What ``voxflow forget`` names: the paths and contents a source stands for, the models trained on the recordings."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
import soundfile as sf
from pymongo.database import Database

from models.artifact import TRAINING_HASHES_FILE
from models.registry import shipped_bundle
from store.cache import PredictionCache
from store.feature_store import FeatureStore
from store.latency import LatencyLog
from store.models import ModelStore
from store.mongo import ResultStore
from store.queue import FileQueue, QueueItem
from tests.tasks.conftest import register_model
from tasks.erasure import Listed, Named, checked_hashes, forget, listed
from voxflow.errors import VoxflowError
from voxflow.settings import Settings


def _wav(path: Path, seed: int) -> str:
    sf.write(path, np.random.default_rng(seed).normal(scale=0.1, size=8000), 8000)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_source_stands_for_its_files_paths_and_contents_and_a_gone_one_for_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    first, second = _wav(folder / "a.wav", 1), _wav(folder / "b.wav", 2)
    (folder / "notes.txt").write_text("not audio")
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["batch/b.wav", "batch/missing.wav"], "subject_id": ["s1", "s2"]}).to_csv(manifest, index=False)

    assert listed(str(folder), max_file_bytes=10**6) == Listed(frozenset({f"{folder}/a.wav", f"{folder}/b.wav"}), frozenset({first, second}))
    assert listed(str(manifest), max_file_bytes=10**6) == Listed(frozenset({f"{folder}/b.wav", f"{folder}/missing.wav"}), frozenset({second}))
    (folder / "a.wav").unlink()
    gone = f"{folder}/a.wav"  # stored under it before; for all that is known, a folder
    assert listed(str(folder / "a.wav"), max_file_bytes=10**6) == Listed(frozenset({gone}), folders=frozenset({f"{gone}/"}))
    assert listed(str(folder / "b.wav"), max_file_bytes=10) == Listed(frozenset({f"{folder}/b.wav"}))  # too big to hash: by its path


def test_a_hash_is_64_hexadecimal_digits() -> None:
    assert checked_hashes([" " + "AB" * 32]) == {"ab" * 32}
    with pytest.raises(VoxflowError, match=r"^--sha256 'abc' is not a sha256 \(64 hexadecimal digits"):
        checked_hashes(["ab" * 32, "abc"])


@pytest.fixture
def settings(home_of_its_own: Settings) -> Settings:
    return home_of_its_own


def test_the_models_trained_on_the_recordings_are_named_and_those_whose_list_cannot_be_read(
    mongo_db: Database, redis_client: redis.Redis, settings: Settings
) -> None:
    forgotten, other = "a" * 64, "b" * 64
    models = ModelStore(mongo_db)
    trained_on = register_model(models, settings, 1, training_hashes=[forgotten, other])
    register_model(models, settings, 2, training_hashes=[other])
    without_list = register_model(models, settings, 3)
    edited = register_model(models, settings, 4, training_hashes=[forgotten])
    (settings.models_dir / edited / TRAINING_HASHES_FILE).write_text(f"{other}\n")
    gone = register_model(models, settings, 5, training_hashes=[forgotten])
    shutil.rmtree(settings.models_dir / gone)
    cache = PredictionCache(redis_client, ttl_s=60, database=mongo_db.name)

    erasure = forget(
        Named(frozenset({forgotten})), db=mongo_db, queue=FileQueue(redis_client, stream=f"vxtest:queue:{mongo_db.name}"),
        latency=LatencyLog(redis_client, maxlen=100, stream=f"vxtest:latency:{mongo_db.name}"), cache=cache,
        features=FeatureStore(settings.feature_store_dir), settings=settings, dry_run=True,
    )
    assert erasure.trained_on == (trained_on,)
    assert sorted(erasure.training_unknown) == sorted([without_list, edited, gone])
    assert shipped_bundle().card.version not in erasure.training_unknown  # trained on VOICED, its list read: not on these
    assert (erasure.recordings, erasure.unmatched, erasure.backups) == (0, (f"sha256 {forgotten}",), ())


def test_a_folder_since_deleted_forgets_what_was_stored_under_it_and_nothing_beside_it(
    mongo_db: Database, redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    inside, beside = ("a" * 64, "/c/b42/a.wav"), ("c" * 64, "/c/b420/c.wav")
    results = ResultStore(mongo_db)
    results.insert_predictions([
        {"audio_sha256": sha, "model_version": "m1", "path": path, "score": 0.5, "created_at": datetime.now(timezone.utc)}
        for sha, path in (inside, ("b" * 64, "/c/b42/sub/b.wav"), beside)
    ])
    results.insert_quarantine([{"path": "/c/b42/gone.wav", "stage": "discover", "reason": "not found", "created_at": datetime.now(timezone.utc)}])
    mongo_db["labels"].insert_many([{"audio_sha256": sha, "label": "healthy", "path": path} for sha, path in (inside, beside)])
    features = FeatureStore(settings.feature_store_dir)
    features.write_chunk(pa.table({"audio_sha256": [inside[0], beside[0]], "path": [inside[1], beside[1]], "f0_mean": [1.0, 2.0]}),
                         feature_version=4, run_id="r1", chunk_id=0)
    queue = FileQueue(redis_client, stream=f"vxtest:queue:{mongo_db.name}")
    queue.enqueue([QueueItem("/c/b42/d.wav"), QueueItem("/c/b420/e.wav")])

    erasure = forget(
        Named(sources={"/c/b42": listed("/c/b42", max_file_bytes=10**6)}), db=mongo_db, queue=queue,
        latency=LatencyLog(redis_client, maxlen=100, stream=f"vxtest:latency:{mongo_db.name}"),
        cache=PredictionCache(redis_client, ttl_s=60, database=mongo_db.name), features=features, settings=settings, dry_run=False,
    )
    assert (erasure.predictions, erasure.quarantine, erasure.labels, erasure.feature_rows, erasure.queued, erasure.unmatched) == (2, 1, 1, 1, 1, ())
    assert [doc["path"] for doc in mongo_db["predictions"].find()] == [doc["path"] for doc in mongo_db["labels"].find()] == ["/c/b420/c.wav"]
    assert features.read(feature_version=4)["path"].tolist() == ["/c/b420/c.wav"]
    assert [entry.path for entry in queue.read("next", count=10, claim_idle_s=60)] == ["/c/b420/e.wav"]
    redis_client.delete(queue.stream)
