"""Model artifacts: UBJ + card, checksum-verified, no pickle, explained scores."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from models.artifact import read_bundle, read_training_hashes, save_model, score
from models.train import fit_booster
from voxflow.errors import ModelError

NAMES = ("a", "b", "c")


def _model(directory: Path, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 80)
    features = rng.normal(size=(80, 3))
    features[:, 1] += 3 * labels
    booster = fit_booster(features, labels, rounds=30, seed=seed)
    card = save_model(booster, {"feature_version": 9, "feature_names": NAMES, "threshold": 0.5, "created_at": "2026-11-27T00:00:00+00:00"}, directory)
    return card, features, labels


def test_round_trip_scores_and_explains(tmp_path: Path) -> None:
    card, features, labels = _model(tmp_path / "m")
    assert card.version.startswith("xgb-fv9-") and (tmp_path / "m" / "model.ubj").exists()
    scored = score(read_bundle(tmp_path / "m"), features)
    assert scored.scores.shape == (80,)
    assert scored.scores[labels == 1].mean() > scored.scores[labels == 0].mean()
    assert {f["feature"] for f in scored.top_factors[0]} <= set(NAMES)
    # The strongest explanation of most rows is the one informative feature.
    assert np.mean([row[0]["feature"] == "b" for row in scored.top_factors]) > 0.8


def test_a_missing_feature_is_explained_as_none_not_nan(tmp_path: Path) -> None:
    card, features, _ = _model(tmp_path / "m")
    unvoiced = features[:4].copy()
    unvoiced[:, 1] = np.nan  # e.g. no voiced frame: no F0, no jitter
    scored = score(read_bundle(tmp_path / "m"), unvoiced, n_factors=3)
    values = {f["feature"]: f["value"] for f in scored.top_factors[0]}
    assert values["b"] is None and all(v is not None for k, v in values.items() if k != "b")
    json.dumps(scored.top_factors, allow_nan=False)  # strict JSON, as a MongoDB server may insist


def _listed(directory: Path):
    booster = fit_booster(np.zeros((4, 3)), np.array([0, 1, 0, 1]), rounds=2)
    fields = {"feature_version": 9, "feature_names": NAMES, "threshold": 0.5, "created_at": "2026-12-06T00:00:00+00:00"}
    return save_model(booster, fields, directory, training_hashes=["b" * 64, "a" * 64, "b" * 64])


def test_a_model_keeps_the_audio_it_was_trained_on(tmp_path: Path) -> None:
    card, _, _ = _model(tmp_path / "m")
    assert read_training_hashes(tmp_path / "m", card) is None  # saved without them (as before they were kept): unknown
    card = _listed(tmp_path / "n")
    assert read_training_hashes(tmp_path / "n", card) == {"a" * 64, "b" * 64}
    assert card.training_hashes_sha256 == hashlib.sha256((tmp_path / "n" / "training_hashes.txt").read_bytes()).hexdigest()


@pytest.mark.parametrize("edit", [lambda text: "", lambda text: text.split("\n", 1)[1], lambda text: text + "c" * 64 + "\n"])
def test_an_emptied_or_edited_training_list_is_refused(tmp_path: Path, edit) -> None:
    # Unchecked, an emptied list read as "trained on nothing": a retrain compared the champion on its own training rows.
    card = _listed(tmp_path / "n")
    listed = tmp_path / "n" / "training_hashes.txt"
    listed.write_text(edit(listed.read_text()))
    message = (rf"^model {card.version}: {listed} has sha256 [0-9a-f]{{12}}, not the card's {card.training_hashes_sha256[:12]}: "
               r"the list of recordings it was trained on was emptied or edited; restore the folder from a backup, or save the model again$")
    with pytest.raises(ModelError, match=message):
        read_training_hashes(tmp_path / "n", card)
    assert read_bundle(tmp_path / "n").card == card  # the booster still scores: only a retrain reads the list
    listed.unlink()
    with pytest.raises(ModelError, match=rf"^model folder {tmp_path / 'n'} is incomplete: {listed} is missing$"):
        read_training_hashes(tmp_path / "n", card)


def test_a_training_list_its_card_has_no_checksum_of_is_not_trusted(tmp_path: Path) -> None:
    _listed(tmp_path / "n")  # as saved before cards recorded the list's checksum (2026-12-07)
    stored = json.loads((tmp_path / "n" / "card.json").read_text())
    del stored["training_hashes_sha256"]
    (tmp_path / "n" / "card.json").write_text(json.dumps(stored))
    bundle = read_bundle(tmp_path / "n")  # the model loads
    assert read_training_hashes(tmp_path / "n", bundle.card) is None  # its list is unknown, as if it had none


def test_tampered_booster_is_refused(tmp_path: Path) -> None:
    _model(tmp_path / "m")
    raw = bytearray((tmp_path / "m" / "model.ubj").read_bytes())
    raw[-10] ^= 0x01
    (tmp_path / "m" / "model.ubj").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="does not match"):
        read_bundle(tmp_path / "m")


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"threshold": 0.0}, "threshold or feature version was edited"),  # every clip would be labelled pathological
        ({"positive_label": "healthy", "negative_label": "pathological"}, "labels scores 'healthy'/'pathological'"),
    ],
)
def test_an_edited_card_is_refused(tmp_path: Path, edit: dict, message: str) -> None:
    _model(tmp_path / "m")
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    (tmp_path / "m" / "card.json").write_text(json.dumps({**card, **edit}))
    with pytest.raises(ModelError, match=message):
        read_bundle(tmp_path / "m")


def test_a_card_versioned_before_thresholds_were_covered_is_read(tmp_path: Path) -> None:
    card, _, _ = _model(tmp_path / "m")
    legacy = f"xgb-fv9-{card.booster_sha256[:10]}"  # the booster's hash alone, before 2026-11-28
    stored = json.loads((tmp_path / "m" / "card.json").read_text())
    (tmp_path / "m" / "card.json").write_text(json.dumps({**stored, "version": legacy}))
    assert read_bundle(tmp_path / "m").card.version == legacy


def test_wrong_feature_count_is_a_model_error(tmp_path: Path) -> None:
    _model(tmp_path / "m")
    with pytest.raises(ModelError, match="expects 3 features"):
        score(read_bundle(tmp_path / "m"), np.zeros((2, 5)))


def test_model_for_another_feature_set_is_refused(tmp_path: Path) -> None:
    from models.artifact import check_feature_set

    card, _, _ = _model(tmp_path / "m")
    check_feature_set(card, feature_version=9, feature_names=NAMES)
    with pytest.raises(ModelError, match="trained on feature version 9 .* computes version 2"):
        check_feature_set(card, feature_version=2, feature_names=NAMES)
    with pytest.raises(ModelError, match="3 features.*4 features"):
        check_feature_set(card, feature_version=9, feature_names=(*NAMES, "d"))
    # Reordered names had read "trained on feature version 9 (3 features) but this voxflow computes version 9 (3 features)".
    with pytest.raises(ModelError, match=rf"names or their order differ .* feature 1 is {NAMES[0]!r} on the card, {NAMES[1]!r} here: retrain"):
        check_feature_set(card, feature_version=9, feature_names=(NAMES[1], NAMES[0], *NAMES[2:]))

