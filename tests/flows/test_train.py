"""`voxflow train` end to end (the path `make model` ships the baseline with): real CLI, Prefect, Dask, MongoDB."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import tasks.ingest
from features.schema import FEATURE_NAMES
from flows.train import training_files
from models.artifact import read_bundle
from tasks.ingest import Candidate, hash_candidate
from tasks.labels import read_labels
from tests.voxflow_cli import last_json, run_cli
from voxflow.demo import write_demo_corpus

pytestmark = pytest.mark.slow


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """24 labelled synthetic clips (wav/flac/ogg/mp3) of their own seed, in a manifest with relative paths."""
    return write_demo_corpus(tmp_path / "corpus", n=24, seed=20261128)


def test_train_to_a_folder_then_registered_and_promoted(cli_env: dict[str, str], manifest: Path, tmp_path: Path) -> None:
    env = {**cli_env, "VOXFLOW_CV_REPEATS": "2"}
    out = tmp_path / "model"
    command = run_cli(["train", str(manifest), "--out", str(out), "--dataset", "synthetic test vowels"], {**env, "VOXFLOW_CHUNK_SIZE": "8"})
    trained = last_json(command)
    # Extraction says how far it got (at most every 2 s): the first chunk done, and the last.
    said = re.findall(r"tasks.training_data: Extracting features: (\d+)/24 files \((\d+)%\) · [\d.]+ files/s · ETA \d+ s", command.stderr)
    assert said[0] == ("8", "33") and said[-1] == ("24", "100"), command.stderr[-3000:]  # the first chunk done is always said
    assert "tasks.progress: Cross-validating: 10/10 folds (100%) · " in command.stderr, command.stderr[-3000:]  # 5 folds x 2 repeats
    assert trained["n"] == 24 and trained["n_positive"] == 12 and trained["auc"] > 0.9

    bundle = read_bundle(out)  # checks the booster against the sha256 on its card
    card = json.loads((out / "card.json").read_text())
    assert bundle.card.version == card["version"] == trained["version"]
    assert card["training"]["dataset"] == "synthetic test vowels" and card["training"]["rejected"] == 0
    assert len(card["training"]["data_hash"]) == 64 and 1 <= len(card["training"]["selected_features"]) <= 8
    # What runs are compared with: every feature's bins over the 24 training rows.
    profile = card["input_profile"]
    assert profile["n"] == 24 and list(profile["features"]) == list(FEATURE_NAMES)
    assert all(sum(spec["counts"]) == 24 for spec in profile["features"].values())
    assert last_json(run_cli(["models", "list", "--json"], env)) == []  # a folder of its own is not registered

    promoted = last_json(run_cli(["train", str(manifest), "--promote"], env))
    assert promoted["version"] == trained["version"]  # same data, same recipe: the same booster
    [doc] = last_json(run_cli(["models", "list", "--json"], env))
    assert doc["version"] == trained["version"] and doc["status"] == "champion"
    analysed = last_json(run_cli(["analyze", str(manifest), "--json"], env))
    assert analysed["model_version"] == trained["version"] and analysed["input_drift"]["too_few"], analysed  # 24 files: not judged


def test_train_reads_each_file_once_before_extracting_it(manifest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The labels were read by hashing every file, then every file was hashed again to be extracted.
    hashed: list[Path] = []
    content_hash = tasks.ingest.content_hash
    monkeypatch.setattr(tasks.ingest, "content_hash", lambda path, **limit: hashed.append(path) or content_hash(path, **limit))
    files, refused = training_files(read_labels(manifest, max_file_bytes=10**8))
    assert len(files) == len(hashed) == 24 and len(set(hashed)) == 24 and refused == []
    monkeypatch.undo()
    subjects = pd.read_csv(manifest)["subject_id"].astype(str).tolist()
    rows = [hash_candidate(Candidate(Path(ref.path), subject_id=ref.subject_id), 10**8) for ref in files]
    assert files == rows and sorted(ref.subject_id for ref in files) == sorted(subjects)


def test_train_refuses_a_folder_that_should_be_promoted(cli_env: dict[str, str], manifest: Path, tmp_path: Path) -> None:
    refused = run_cli(["train", str(manifest), "--out", str(tmp_path / "model"), "--promote"], cli_env)
    assert refused.returncode == 2 and "not allowed with argument" in refused.stderr
    assert not (tmp_path / "model").exists()


def test_train_reads_labels_as_labels_import_does(cli_env: dict[str, str], manifest: Path, tmp_path: Path) -> None:
    # 0/1 and any case of pathological/healthy: before, only the exact --positive word counted, and this trained on 0 positives.
    rows = pd.read_csv(manifest)
    words = {"pathological": ["1", "Pathological"], "healthy": ["0", "HEALTHY"]}
    mixed = manifest.parent / "mixed.csv"
    rows.assign(label=[words[label][i % 2] for i, label in enumerate(rows["label"])]).to_csv(mixed, index=False)
    trained = run_cli(["train", str(mixed), "--out", str(tmp_path / "model")], {**cli_env, "VOXFLOW_CV_REPEATS": "1"})
    report = last_json(trained)
    assert report["n_positive"] == 12 and report["auc"] > 0.9 and report["cv"] == "subject-grouped stratified 5x1"


def test_train_follows_the_training_settings_retrain_follows(cli_env: dict[str, str], manifest: Path, tmp_path: Path) -> None:
    # train chose the balanced-accuracy threshold whatever VOXFLOW_TARGET_SENSITIVITY said, and trained in its own process
    # whatever VOXFLOW_DISTRIBUTED_TRAINING_ROWS said; retrain followed both.
    env = {**cli_env, "VOXFLOW_CV_REPEATS": "1", "VOXFLOW_TARGET_SENSITIVITY": "0.95", "VOXFLOW_DISTRIBUTED_TRAINING_ROWS": "20", "PREFECT_LOGGING_LEVEL": "INFO"}
    command = run_cli(["train", str(manifest), "--out", str(tmp_path / "model")], env)
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["metrics"]["target_sensitivity"] == 0.95 and card["metrics"]["sensitivity"] >= 0.9, card["metrics"]
    assert re.search(r"Training the final model on 24 rows across the Dask cluster at tcp://\S+ \(xgboost.dask", command.stderr), command.stderr[-3000:]
    bundle = read_bundle(tmp_path / "model")  # the booster the workers trained, checked against its card's sha256
    assert bundle.card.version == card["version"]


def test_train_leaves_out_every_row_of_audio_listed_with_two_labels_as_evaluate_does(cli_env: dict[str, str], manifest: Path, tmp_path: Path) -> None:
    # train had kept the first of the two rows and trained on it, while labels import and evaluate reject both.
    rows = pd.read_csv(manifest)
    again = rows.iloc[[0]].assign(label={"pathological": "healthy", "healthy": "pathological"}[rows["label"].iloc[0]])
    conflicting = manifest.parent / "conflicting.csv"
    pd.concat([rows, again]).to_csv(conflicting, index=False)
    report = last_json(run_cli(["train", str(conflicting), "--out", str(tmp_path / "model")], {**cli_env, "VOXFLOW_CV_REPEATS": "1"}))
    assert (report["n"], report["conflicts"], report["rejected"]) == (23, 1, 2)
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert (card["training"]["conflicts"], card["training"]["rejected"]) == (1, 2)


def test_train_refuses_fewer_subjects_than_folds_in_one_line_and_saves_nothing(cli_env: dict[str, str], manifest: Path) -> None:
    one = manifest.parent / "one-subject.csv"
    pd.read_csv(manifest).assign(subject_id="s1").to_csv(one, index=False)
    models = Path(cli_env["VOXFLOW_HOME"]) / "models"
    before = set(models.iterdir()) if models.is_dir() else set()
    refused = run_cli(["train", str(one)], cli_env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert refused.stderr.splitlines()[-1].startswith("voxflow: error: ") and "(1 in all)" in refused.stderr and "VOXFLOW_CV_SPLITS" in refused.stderr
    assert (set(models.iterdir()) if models.is_dir() else set()) == before
