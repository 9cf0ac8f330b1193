"""Retraining end to end: the real CLI, Prefect server, Dask workers, Redis lock and the MongoDB wire server."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import redis

import flows.retrain
from flows.retrain import retrain_nightly
from store.locks import lock_key
from tests.flows.conftest import name_redis_clients, still_connected
from tests.voxflow_cli import env_db, last_json, run_cli
from voxflow.demo import write_demo_corpus
from voxflow.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """40 labelled synthetic clips no other test analyses (own seed: own content hashes)."""
    return write_demo_corpus(tmp_path / "corpus", n=40, seed=20261127)


@pytest.fixture
def retrain_env(cli_env: dict[str, str]) -> dict[str, str]:
    # A margin no model can clear (an AUC gain of 1): the challenger stays challenger, deterministically.
    return {**cli_env, "VOXFLOW_CV_REPEATS": "2", "VOXFLOW_PROMOTION_MARGIN": "1"}


def _absolute(corpus: Path, rows: pd.DataFrame, target: Path) -> Path:
    rows.assign(path=[str(corpus.parent / p) for p in rows["path"]]).to_csv(target, index=False)
    return target


def test_labels_retrain_promote_rollback(retrain_env: dict[str, str], corpus: Path, tmp_path: Path) -> None:
    env = retrain_env
    manifest = pd.read_csv(corpus)
    half = _absolute(corpus, manifest.iloc[:20], tmp_path / "half.csv")

    # Half the labels, no features stored yet: all extracted on Dask.
    assert last_json(run_cli(["labels", "import", str(half), "--json"], env))["imported"] == 20
    first = last_json(run_cli(["retrain", "--json"], env))
    assert first["n"] == 20 and first["dropped"] == 0 and first["status"] == "challenger"
    assert "below the margin 1.000" in first["reason"]
    # The shipped baseline never trained on these 20 recordings: it is compared on them, as a model.
    assert first["compared_metrics"]["n"] == first["champion_metrics"]["n"] == 20
    assert first["metrics"]["auc"] > 0.9 and first["metrics"]["n_splits"] == 5 and first["metrics"]["n_repeats"] == 2
    a = first["version"]
    assert last_json(run_cli(["models", "promote", a, "--json"], env))["champion"] == a
    # The same labels rebuild the champion, now from the feature store: its folder and its document both say so
    # (the folder had kept the first card, which had extracted all 20, and so had the document).
    again = last_json(run_cli(["retrain", "--json"], env))
    assert again["version"] == a and again["status"] == "champion"
    doc = next(d for d in last_json(run_cli(["models", "list", "--json"], env)) if d["version"] == a)
    assert doc["status"] == "champion" and doc["training"]["extracted"] == 0 and doc["training"]["from_feature_store"] == 20
    card = json.loads(Path(doc["path"], "card.json").read_text())
    assert card["training"] == doc["training"] and card["input_profile"]["n"] == 20

    # Inference uses the champion and records it; the analyze run fills the feature store. The 40 recordings are of the
    # kind its 20 were: compared with its training profile (read from the feature store), none shifted.
    scored = last_json(run_cli(["analyze", str(corpus), "--json"], env))
    assert scored["model_version"] == a and scored["scored"] == 40
    assert (scored["input_drift"]["n"], scored["input_drift"]["training_n"], scored["input_drift"]["shifted_count"]) == (40, 20, 0), scored["input_drift"]
    predictions = env_db(env)["predictions"]
    assert predictions.count_documents({"model_version": a}) == 40

    imported = last_json(run_cli(["labels", "import", str(corpus), "--json"], env))
    assert imported == {"imported": 40, "positive": 20, "negative": 20, "negative_labels": {"healthy": 20}, "by_sha256": 0, "rejected": 0, "conflicts": 0, "total": 40}
    second = last_json(run_cli(["retrain", "--json"], env))
    b = second["version"]
    assert second["n"] == 40 and second["status"] == "challenger" and second["champion_version"] == a and b != a
    # It merged the analyze run's chunk files (and the extraction's) into parts before reading them.
    assert [(v["chunk_files"], v["parts"] > 0) for v in last_json(run_cli(["features", "status", "--json"], env))] == [(0, True)]

    listed = last_json(run_cli(["models", "list", "--json"], env))
    doc = next(d for d in listed if d["version"] == b)
    assert doc["status"] == "challenger" and doc["reason"] == second["reason"]
    # Every feature came from the store the analyze run wrote: nothing re-extracted.
    assert doc["training"]["from_feature_store"] == 40 and doc["training"]["extracted"] == 0
    assert len(doc["data_hash"]) == 64 and doc["data_hash"] != next(d for d in listed if d["version"] == a)["data_hash"]
    assert doc["feature_version"] >= 1 and doc["code_version"] and len(doc["training"]["selected_features"]) <= 8
    assert {"auc", "uar", "f1", "sensitivity", "specificity", "brier", "threshold", "calibration"} <= set(doc["metrics"])
    # a trained on the first 20: the two models meet on the 20 labels that came after it.
    assert doc["champion_metrics"]["n"] == doc["compared_metrics"]["n"] == 20 and f"champion {a} never trained on" in doc["compared_with"]
    assert Path(doc["path"], "model.ubj").is_file()
    table = run_cli(["models", "list"], env)
    assert table.returncode == 0 and b in table.stdout and "challenger" in table.stdout

    run_cli(["models", "promote", b], env)
    assert last_json(run_cli(["analyze", str(half), "--json"], env))["model_version"] == b
    assert last_json(run_cli(["models", "rollback", "--json"], env)) == {"retired": b, "champion": a}
    assert {d["version"]: d["rolled_back"] for d in last_json(run_cli(["models", "list", "--json"], env))} == {a: False, b: True}
    # The same labels rebuild b, which wins at margin 0 (same recipe, same folds): rolled back, it stays retired.
    rebuilt_run = run_cli(["retrain", "--json"], {**env, "VOXFLOW_PROMOTION_MARGIN": "0", "PREFECT_LOGGING_LEVEL": "INFO"})
    rebuilt = last_json(rebuilt_run)
    assert rebuilt["version"] == b and rebuilt["status"] == "retired" and f"{b} was rolled back" in rebuilt["reason"]
    assert f"Not promoted: {b} stays retired (" in rebuilt_run.stderr  # had logged "Kept {b} as challenger"
    assert next(d for d in last_json(run_cli(["models", "list", "--json"], env)) if d["version"] == a)["status"] == "champion"
    assert last_json(run_cli(["analyze", str(half), "--json"], env))["model_version"] == a
    assert last_json(run_cli(["models", "rollback", "--json"], env)) == {"retired": a, "champion": None}

    # The registry's checksum guards the artifact: a swapped booster is refused, by name.
    run_cli(["models", "promote", a], env)
    booster = Path(next(d for d in listed if d["version"] == a)["path"], "model.ubj")
    booster.write_bytes(booster.read_bytes()[:-1] + b"\x00")
    refused = run_cli(["analyze", str(half), "--json"], env)
    assert refused.returncode != 0 and a in refused.stderr and "does not match" in refused.stderr


def test_second_retrain_is_refused_while_one_runs(retrain_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(retrain_env["VOXFLOW_REDIS_URL"])
    client.set(lock_key("retrain"), "otherhost:4242:token", px=60_000)
    try:
        proc = run_cli(["retrain"], retrain_env)
    finally:
        client.delete(lock_key("retrain"))
    assert proc.returncode == 2
    assert "another retrain run is in progress" in proc.stderr and "otherhost:4242" in proc.stderr


def test_a_refused_retrain_completes_as_skipped_and_closes_its_redis_client(in_process: Settings, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis) -> None:
    names = name_redis_clients(monkeypatch, flows.retrain)
    redis_client.set(lock_key("retrain"), "otherhost:4242:token", px=60_000)
    try:
        # A refusal, not a failure: the flow run completes (a Failed one printed the LockError's traceback twice in a worker's log).
        state = retrain_nightly(return_state=True)
    finally:
        redis_client.delete(lock_key("retrain"))
    assert state.is_completed() and state.result()["status"] == "skipped" and "another retrain run is in progress" in state.result()["reason"]
    assert len(names) == 1 and not still_connected(redis_client, names)


def test_a_retrain_with_too_few_labels_completes_as_skipped_with_a_warning(in_process: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # Was a Failed flow run with a traceback: on a new install, the nightly schedule's run went red every night.
    with caplog.at_level(logging.WARNING):
        state = retrain_nightly(return_state=True)
    assert state.is_completed(), state
    expected = f"the labels collection holds 0 labels; retraining needs at least {in_process.retrain_min_labels}"
    assert state.result()["status"] == "skipped" and state.result()["reason"].startswith(expected)
    assert [r.levelname for r in caplog.records if r.getMessage().startswith(f"Nothing to retrain: {expected}")] == ["WARNING"]


def test_voxflow_retrain_with_too_few_labels_says_so_in_one_line_and_exits_2(retrain_env: dict[str, str]) -> None:
    proc = run_cli(["retrain"], retrain_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == "voxflow: error: the labels collection holds 0 labels; retraining needs at least 20 (voxflow labels import FILE)"


def test_evaluate_prints_the_table_and_json(retrain_env: dict[str, str], corpus: Path, tmp_path: Path) -> None:
    manifest = pd.read_csv(corpus)
    numeric = tmp_path / "cohort.parquet"
    # Labels as 0/1, no subject_id column, paths relative to the manifest's folder.
    pd.DataFrame({"path": [f"corpus/{p}" for p in manifest["path"]], "label": (manifest["label"] == "pathological").astype(int)}).to_parquet(numeric)
    proc = run_cli(["evaluate", str(numeric)], retrain_env)
    report = last_json(proc)
    assert report["n"] == 40 and report["auc"] > 0.9 and 0 <= report["uar"] <= 1
    assert "auc " in proc.stdout and "specificity" in proc.stdout
    assert re.search(r"tasks.progress: Cross-validating: (\d+)/\1 folds \(100%\)", proc.stderr), proc.stderr[-3000:]

    words = tmp_path / "words.csv"
    manifest.assign(path=[f"corpus/{p}" for p in manifest["path"]], label=manifest["label"].map({"pathological": "dysphonic", "healthy": "control"})).to_csv(words, index=False)
    assert last_json(run_cli(["evaluate", str(words), "--positive", "dysphonic"], retrain_env))["n_positive"] == 20
    refused = run_cli(["evaluate", str(words)], retrain_env)
    assert refused.returncode == 2 and "--positive" in refused.stderr


def test_evaluate_refuses_fewer_subjects_than_folds_in_one_line(retrain_env: dict[str, str], corpus: Path, tmp_path: Path) -> None:
    three = tmp_path / "three.csv"
    _absolute(corpus, pd.read_csv(corpus).assign(subject_id=lambda rows: [f"s{i % 3}" for i in range(len(rows))]), three)
    refused = run_cli(["evaluate", str(three)], retrain_env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    last = refused.stderr.splitlines()[-1]
    assert last.startswith("voxflow: error: ") and "(3 in all)" in last and "in 5 folds" in last and "lower VOXFLOW_CV_SPLITS" in last
