"""Model folders: content-addressed versions, the shipped baseline as fallback, checksums on load."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.artifact import read_training_hashes
from models.registry import SHIPPED_DIR, load_bundle, save_version, shipped_bundle
from models.train import fit_booster
from voxflow.errors import ModelError

FIELDS = {"feature_version": 9, "feature_names": ("a", "b"), "threshold": 0.5, "created_at": "2026-11-27T00:00:00+00:00"}


def _booster(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    return fit_booster(rng.normal(size=(60, 2)) + labels[:, None], labels, rounds=10, seed=seed)


def test_saved_version_is_its_content_address_and_loads(tmp_path: Path) -> None:
    card = save_version(_booster(), FIELDS, tmp_path)
    assert (tmp_path / card.version / "model.ubj").is_file() and [path.name for path in tmp_path.iterdir()] == [card.version]
    again = save_version(_booster(), FIELDS, tmp_path)  # same bytes: same version, folder kept
    assert again.version == card.version
    assert load_bundle(tmp_path, card.version, expected_sha256=card.booster_sha256).card == card
    stricter = save_version(_booster(), FIELDS | {"threshold": 0.6}, tmp_path)  # same booster, other labels
    assert stricter.version != card.version and stricter.booster_sha256 == card.booster_sha256
    assert load_bundle(tmp_path, card.version, expected_sha256=card.booster_sha256).card.threshold == 0.5


def test_saving_again_repairs_a_damaged_version(tmp_path: Path) -> None:
    card = save_version(_booster(), FIELDS, tmp_path)
    (tmp_path / card.version / "model.ubj").write_bytes(b"garbage")
    assert save_version(_booster(), FIELDS, tmp_path).version == card.version
    assert load_bundle(tmp_path, card.version, expected_sha256=card.booster_sha256).card == card
    assert [path.name for path in tmp_path.iterdir()] == [card.version]


def test_saving_a_version_again_writes_its_card_and_training_list(tmp_path: Path) -> None:
    # The same data and recipe rebuild the same version: the folder had kept the first save's card (its date,
    # its counts, or a hand edit of its metrics) and training list, while the registry recorded the new card.
    first = save_version(_booster(), FIELDS | {"metrics": {"auc": 0.7}}, tmp_path, training_hashes=["a" * 64])
    folder = tmp_path / first.version
    stored = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**stored, "metrics": {"auc": 0.99}}))  # still reads back whole
    again = save_version(_booster(), FIELDS | {"metrics": {"auc": 0.7}, "created_at": "2026-12-07T00:00:00+00:00"}, tmp_path,
                         training_hashes=["a" * 64, "b" * 64])
    assert again.version == first.version and again != first
    assert load_bundle(tmp_path, again.version, expected_sha256=again.booster_sha256).card == again
    assert json.loads((folder / "card.json").read_text()) == again.to_dict()
    assert read_training_hashes(folder, again) == {"a" * 64, "b" * 64}
    unlisted = save_version(_booster(), FIELDS, tmp_path)  # saved without a list: none is left from the saves before
    assert not (folder / "training_hashes.txt").exists() and read_training_hashes(folder, unlisted) is None
    assert [path.name for path in tmp_path.iterdir()] == [first.version]


def test_saves_running_at_once_never_mix_their_files(tmp_path: Path) -> None:
    boosters = [_booster(seed) for seed in range(4)]  # two saves of each: rivals for the same folder and for staging
    for round_ in range(5):
        models = tmp_path / str(round_)
        with ThreadPoolExecutor(8) as pool:
            cards = list(pool.map(lambda booster: save_version(booster, FIELDS, models), boosters + boosters))
        for card in cards:
            assert load_bundle(models, card.version, expected_sha256=card.booster_sha256).card == card
            assert json.loads((models / card.version / "card.json").read_text())["version"] == card.version
        assert sorted(path.name for path in models.iterdir()) == sorted({card.version for card in cards})


def test_a_save_clears_what_a_killed_save_left_an_hour_ago(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".staging-killed", tmp_path / ".staging-running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "model.ubj").write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    card = save_version(_booster(), FIELDS, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([".staging-running", card.version])


def test_no_version_is_the_shipped_baseline(tmp_path: Path) -> None:
    assert load_bundle(tmp_path).card.version == shipped_bundle().card.version
    assert load_bundle(tmp_path, shipped_bundle().card.version).card.version == shipped_bundle().card.version
    # Its card records its training list's checksum: a retrain compares it on the VOICED recordings it never saw.
    assert len(read_training_hashes(SHIPPED_DIR, shipped_bundle().card)) == 208


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_bundle(tmp_path, "xgb-fv1-doesnotexist")


def test_artifact_must_match_the_registry_checksum(tmp_path: Path) -> None:
    card = save_version(_booster(), FIELDS, tmp_path)
    other = save_version(_booster(seed=1), FIELDS, tmp_path)
    with pytest.raises(ModelError, match=rf"^model {card.version}: artifact sha256 {card.booster_sha256[:12]} differs from the registry's 000000000000"):
        load_bundle(tmp_path, card.version, expected_sha256="0" * 64)
    # Another valid model's files in a version's folder pass their own card's checks; the error had named
    # that other version ("model <other>: artifact sha256 ... differs"), not the one asked for.
    for name in ("model.ubj", "card.json"):
        (tmp_path / card.version / name).write_bytes((tmp_path / other.version / name).read_bytes())
    folder = tmp_path / card.version
    with pytest.raises(ModelError, match=rf"^model {card.version}: its folder {folder} holds another version's files \({other.version}\), not its own$"):
        load_bundle(tmp_path, card.version, expected_sha256=card.booster_sha256)


def test_training_list_must_match_the_registry_checksum(tmp_path: Path) -> None:
    card = save_version(_booster(), FIELDS, tmp_path, training_hashes=["a" * 64])
    assert load_bundle(tmp_path, card.version, expected_training_sha256=card.training_hashes_sha256).card == card
    # A list and a card rewritten to agree with each other (a folder put together by hand) differ from the registry.
    with pytest.raises(ModelError, match=rf"^model {card.version}: the training list its card records \({card.training_hashes_sha256[:12]}\) "
                                         r"differs from the registry's 000000000000; the artifact was replaced$"):
        load_bundle(tmp_path, card.version, expected_training_sha256="0" * 64)
