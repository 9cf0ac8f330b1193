"""What ``voxflow forget`` names: the paths and contents a source stands for, the models trained on the recordings."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
import soundfile as sf
from pydantic import SecretStr
from pymongo.database import Database

from models.artifact import TRAINING_HASHES_FILE
from models.registry import shipped_bundle
from store.cache import PredictionCache
from store.feature_store import FeatureStore
from store.latency import LatencyLog
from store.models import ModelStore
from store.queue import FileQueue
from tests.tasks.conftest import register_model
from tasks.erasure import Listed, Named, checked_hashes, forget, listed
from voxflow import services
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
    assert listed(str(folder / "a.wav"), max_file_bytes=10**6) == Listed(frozenset({f"{folder}/a.wav"}))  # stored under it before
    assert listed(str(folder / "b.wav"), max_file_bytes=10) == Listed(frozenset({f"{folder}/b.wav"}))  # too big to hash: by its path


def test_a_hash_is_64_hexadecimal_digits() -> None:
    assert checked_hashes([" " + "AB" * 32]) == {"ab" * 32}
    with pytest.raises(VoxflowError, match=r"^--sha256 'abc' is not a sha256 \(64 hexadecimal digits"):
        checked_hashes(["ab" * 32, "abc"])


@pytest.fixture
def settings(test_settings: Settings, tmp_path: Path, mongo_db: Database) -> Settings:
    # A models folder of its own, on the session's servers.
    return test_settings.model_copy(update={"home": tmp_path, "mongo_uri": SecretStr(services.mongo_uri(test_settings)), "mongo_db": mongo_db.name})


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
