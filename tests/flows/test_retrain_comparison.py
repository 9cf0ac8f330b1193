"""How a retrain compares its challenger with the champion model on the recordings that model never saw."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from flows.retrain import CV_SEED, champion_on_same_folds, champion_on_unseen_rows
from models.artifact import score
from models.registry import load_bundle, save_version
from models.train import DEFAULT_N_FEATURES, DEFAULT_PARAMS, DEFAULT_ROUNDS, choose_threshold, cross_validate, fit_model, holdout_metrics
from tasks.training_data import TrainingSet
from voxflow.errors import ModelError
from voxflow.settings import Settings


def _data(n: int, seed: int) -> TrainingSet:
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 != 0).astype(np.int32)
    features = rng.normal(size=(n, len(FEATURE_NAMES)))
    features[:, 5] += 1.5 * labels
    return TrainingSet(features=features, labels=labels, groups=np.arange(n), hashes=[f"{seed:02d}{i:062d}" for i in range(n)])


@pytest.fixture
def settings(tmp_path: Path, prefect_api: str) -> Iterator[Settings]:
    # The recipe comparison runs as a Prefect task: on the session's server (none given, Prefect starts a temporary one).
    with temporary_settings(updates={PREFECT_API_URL: prefect_api, PREFECT_LOGGING_TO_API_ENABLED: False}):
        yield Settings(home=tmp_path, retrain_min_labels=20, cv_splits=4, cv_repeats=1)


def _champion(settings: Settings, data: TrainingSet, *, keep_hashes: bool = True) -> str:
    model = fit_model(data.features, data.labels)
    fields = {"feature_version": FEATURE_VERSION, "feature_names": FEATURE_NAMES, "threshold": 0.5, "created_at": "2026-12-06T00:00:00+00:00",
              "params": {**DEFAULT_PARAMS, "rounds": DEFAULT_ROUNDS, "n_features": DEFAULT_N_FEATURES}}  # the default recipe, as cards record it
    return save_version(model.booster, fields, settings.models_dir, training_hashes=data.hashes if keep_hashes else None).version


def _joined(old: TrainingSet, new: TrainingSet) -> TrainingSet:
    return TrainingSet(np.vstack([old.features, new.features]), np.concatenate([old.labels, new.labels]),
                       np.concatenate([old.groups, new.groups + 1000]), old.hashes + new.hashes)


def test_the_champion_is_scored_on_the_labels_that_arrived_after_it(settings: Settings) -> None:
    old, new = _data(60, seed=1), _data(30, seed=2)
    champion = load_bundle(settings.models_dir, _champion(settings, old))
    data = _joined(old, new)
    report = cross_validate(data.features, data.labels, data.groups, n_splits=4, n_repeats=1)
    challenger, champion_metrics, note = champion_on_unseen_rows(champion, data, report, settings)
    oof = np.asarray(report.oof_scores)
    threshold = choose_threshold(old.labels, oof[:60])  # the challenger's cut, chosen without the rows compared on
    assert champion_metrics == holdout_metrics(new.labels, score(champion, new.features).scores, 0.5)
    assert challenger == holdout_metrics(new.labels, oof[60:], threshold)
    assert challenger["n"] == champion_metrics["n"] == 30
    assert f"on the 30 labelled recordings of subjects champion {champion.card.version} never trained on" in note


def test_a_new_recording_of_a_subject_the_champion_trained_on_is_not_compared_on(settings: Settings) -> None:
    old, new = _data(60, seed=1), _data(30, seed=2)
    champion = load_bundle(settings.models_dir, _champion(settings, old))
    again = TrainingSet(new.features[:10], new.labels[:10], old.groups[:10], [f"9{i:063d}" for i in range(10)])  # known voices, new files
    data = _joined(_joined(old, new), again)
    data.groups[90:] = old.groups[:10]  # _joined offset them; these are the champion's own subjects
    report = cross_validate(data.features, data.labels, data.groups, n_splits=4, n_repeats=1)
    challenger, champion_metrics, _ = champion_on_unseen_rows(champion, data, report, settings)
    assert challenger["n"] == champion_metrics["n"] == 30


def test_an_emptied_training_list_stops_the_comparison_naming_the_file(settings: Settings) -> None:
    # Unchecked, an emptied list read as "trained on nothing": the champion was compared on its own training rows.
    old, new = _data(60, seed=1), _data(30, seed=2)
    version = _champion(settings, old)
    listed = settings.models_dir / version / "training_hashes.txt"
    listed.write_text("")
    champion = load_bundle(settings.models_dir, version)  # it still loads: its booster is intact
    data = _joined(old, new)
    report = cross_validate(data.features, data.labels, data.groups, n_splits=4, n_repeats=1)
    with pytest.raises(ModelError, match=rf"^model {version}: {listed} has sha256 [0-9a-f]{{12}}, not the card's [0-9a-f]{{12}}: "
                                         "the list of recordings it was trained on was emptied or edited; restore the folder from a backup"):
        champion_on_unseen_rows(champion, data, report, settings)


def test_too_few_new_recordings_or_an_unknown_training_set_fall_back_to_the_recipes(settings: Settings) -> None:
    old = _data(60, seed=1)
    few = _joined(old, _data(12, seed=3))  # under retrain_min_labels
    report = cross_validate(few.features, few.labels, few.groups, n_splits=4, n_repeats=1)
    assert champion_on_unseen_rows(load_bundle(settings.models_dir, _champion(settings, old)), few, report, settings) is None
    data = _joined(old, _data(30, seed=2))
    report = cross_validate(data.features, data.labels, data.groups, n_splits=4, n_repeats=1)
    unknown = load_bundle(settings.models_dir, _champion(settings, _data(60, seed=4), keep_hashes=False))
    assert champion_on_unseen_rows(unknown, data, report, settings) is None


def test_without_new_recordings_the_champions_recipe_is_re_run_on_the_challengers_folds(settings: Settings) -> None:
    data = _data(60, seed=1)
    champion = load_bundle(settings.models_dir, _champion(settings, data)).card
    metrics, note = champion_on_same_folds(champion, data, settings)
    report = cross_validate(data.features, data.labels, data.groups, n_splits=4, n_repeats=1, seed=CV_SEED)
    assert metrics == report.as_dict() and note == f"champion {champion.version} recipe re-run on the same folds"
