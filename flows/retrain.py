"""Nightly retraining: labels + stored features -> subject-grouped CV -> challenger -> champion when it wins."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from flows.run_log import send_to_run_log
from flows.train import card_fields, fit_final
from models.artifact import ModelBundle, ModelCard, read_training_hashes, score
from models.promotion import should_promote, unless_champion_changed, unless_rolled_back
from models.registry import model_folder, save_version
from models.train import (
    DEFAULT_N_FEATURES,
    DEFAULT_ROUNDS,
    CVReport,
    check_trainable,
    choose_threshold,
    cross_validate,
    holdout_metrics,
    recorded_recipe,
)
from store.cache import connect_redis
from store.feature_store import FeatureStore
from store.labels import LabelStore
from store.locks import RETRAIN_LOCK, hold_lock
from store.models import ModelStore
from store.mongo import open_database
from tasks.cluster import dask_client
from tasks.labels import LabelledAudio
from tasks.model_registry import model_document, registry_changes, resolve_bundle, usable_artifact
from tasks.progress import step_reporter
from tasks.training_data import TrainingSet, training_set
from voxflow import services
from voxflow.errors import LockError, TooFewLabels
from voxflow.settings import Settings, get_settings

CV_SEED = 0


@task(name="compact-feature-store", cache_policy=NO_CACHE)
def compact_feature_store(settings: Settings) -> None:
    """Merge the feature store's chunk files of this feature version before reading them: reading pays per file.

    Best effort: a failure (a full disk) leaves the chunk files as they were, and they are read as they are.
    """
    logger = get_run_logger()
    try:
        done = FeatureStore(settings.feature_store_dir).compact(feature_version=FEATURE_VERSION)
    except OSError as exc:
        logger.warning("Feature store not compacted, its chunk files read as they are: %s", exc)
        return
    logger.info("Feature store: %s", done.line())


@task(name="assemble-training-set", cache_policy=NO_CACHE)
def assemble_training_set(rows: list[LabelledAudio], settings: Settings) -> TrainingSet:
    """Join labels to the feature store by sha256; extract the missing ones on Dask."""
    data = training_set(rows, settings, open_client=lambda: dask_client(settings))
    logger = get_run_logger()
    logger.info("Training set: %d rows (%d from the feature store, %d extracted), %d dropped", len(data.labels), data.from_store, data.extracted, len(data.dropped))
    for dropped in data.dropped[:5]:
        logger.warning("Dropped %s: %s", dropped["path"] or dropped["audio_sha256"][:12], dropped["reason"])
    return data


@task(name="cross-validate", cache_policy=NO_CACHE)
def cross_validate_recipe(
    data: TrainingSet, settings: Settings, *, columns: list[int] | None = None, params: dict | None = None,
    rounds: int = DEFAULT_ROUNDS, n_features: int | None = DEFAULT_N_FEATURES, what: str = "Cross-validating",
) -> CVReport:
    """Subject-grouped repeated CV of one recipe; the fixed seed gives every recipe the same folds. Progress is logged as ``what``."""
    features = data.features if columns is None else data.features[:, columns]
    return cross_validate(
        features, data.labels, data.groups, n_splits=settings.cv_splits, n_repeats=settings.cv_repeats,
        params=params, rounds=rounds, n_features=n_features, seed=CV_SEED, target_sensitivity=settings.target_sensitivity,
        on_fold=step_reporter(what, settings.cv_splits * settings.cv_repeats, "folds"),
    )


def _recipe_columns(champion: ModelCard) -> list[int] | None:
    """The current columns the champion's recipe may use, or None when they cannot be offered to it."""
    names = list(FEATURE_NAMES)
    if champion.params.get("n_features") is not None:
        # Selection is part of that recipe: it must choose again among the whole set it chose from.
        return list(range(len(names))) if champion.feature_version == FEATURE_VERSION else None
    if set(champion.feature_names) <= set(names):
        return [names.index(n) for n in champion.feature_names]
    return None


def champion_on_same_folds(champion: ModelCard, data: TrainingSet, settings: Settings) -> tuple[dict[str, Any], str]:
    """The champion's recipe (features, params, rounds, selection) cross-validated on the challenger's folds.

    When its features cannot be offered from the current feature set, its recorded metrics stand in (said in the note).
    """
    columns = _recipe_columns(champion)
    if columns is None:
        return dict(champion.metrics), f"champion {champion.version} (feature version {champion.feature_version}) cannot be re-run on feature version {FEATURE_VERSION}: compared with its recorded metrics"
    params, rounds, n_features = recorded_recipe(champion.params)
    report = cross_validate_recipe(
        data, settings, columns=columns, params=params, rounds=rounds, n_features=n_features, what=f"Cross-validating champion {champion.version}'s recipe",
    )
    return report.as_dict(), f"champion {champion.version} recipe re-run on the same folds"


def champion_on_unseen_rows(
    champion: ModelBundle, data: TrainingSet, report: CVReport, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """(challenger, champion, note): both on the labelled recordings of subjects the champion never trained
    on, the champion model's own scores against the challenger recipe's out-of-fold ones.

    This compares the models, not their recipes: a challenger built by the champion's own recipe on new
    labels can win. A new recording of a subject the champion trained on is left out (the champion may
    know the voice, and the challenger's folds keep subjects apart), and the challenger's threshold is
    chosen on its other rows. None when the champion's training set is unknown (saved without it, or before its
    card recorded the list's checksum), its features are not this code's, or those recordings are fewer than
    ``retrain_min_labels`` or of one class.
    """
    card = champion.card
    seen = read_training_hashes(model_folder(settings.models_dir, card.version), card)
    if seen is None or card.feature_version != FEATURE_VERSION or not set(card.feature_names) <= set(FEATURE_NAMES):
        return None
    trained = np.array([sha in seen for sha in data.hashes], dtype=bool)
    unseen = ~np.isin(data.groups, data.groups[trained])
    labels, oof = data.labels[unseen], np.asarray(report.oof_scores)
    if len(labels) < settings.retrain_min_labels or len(set(labels.tolist())) < 2:
        return None
    others = data.labels[~unseen]
    threshold = (
        choose_threshold(others, oof[~unseen], target_sensitivity=settings.target_sensitivity) if len(set(others.tolist())) == 2 else report.threshold
    )
    columns = [FEATURE_NAMES.index(name) for name in card.feature_names]
    champion_scores = score(champion, data.features[unseen][:, columns]).scores
    note = (f"on the {len(labels)} labelled recordings of subjects champion {card.version} never trained on: "
            "its scores against the challenger's out-of-fold scores")
    return holdout_metrics(labels, oof[unseen], threshold), holdout_metrics(labels, champion_scores, card.threshold), note


def _brief(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{name.upper()} {metrics[name]:.3f}" if isinstance(metrics.get(name), float) else f"{name.upper()} -" for name in ("auc", "uar"))


@flow(name="retrain-nightly")
def retrain_nightly() -> dict[str, Any]:
    """Retrain from the ``labels`` collection, register a challenger, promote it when it beats the champion.

    One run at a time (Redis lock ``voxflow:lock:retrain``): a second trigger is refused, and completes as
    ``{"status": "skipped", "reason": ...}``; so does a run with labels too few to train on (too few recordings,
    one class, too few subjects per class): on a new install the schedule's run is not a failure every night.

    Returns
    -------
    dict
        version, status (champion/challenger), reason, metrics, champion_version, champion_metrics, n, dropped.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    try:
        with open_database(services.mongo_uri(settings), settings.mongo_db) as db, connect_redis(
            services.redis_url(settings)
        ) as redis_client, hold_lock(redis_client, RETRAIN_LOCK, ttl_s=settings.lock_ttl_s):
            return _retrain(db, settings, logger)
    except LockError as exc:
        # A refusal, not a failure: the flow run completes with this one line (a scheduler's trigger during a long run).
        logger.warning("Retrain refused: %s", exc.reason)
        return {"status": "skipped", "reason": exc.reason}
    except TooFewLabels as exc:
        logger.warning("Nothing to retrain: %s", exc.reason)
        return {"status": "skipped", "reason": exc.reason}


def _retrain(db: Any, settings: Settings, logger: Any) -> dict[str, Any]:
    labels, models = LabelStore(db), ModelStore(db)
    models.ensure_indexes()
    rows = [LabelledAudio.from_doc(doc) for doc in labels.all()]
    if len(rows) < settings.retrain_min_labels:
        raise TooFewLabels(f"the labels collection holds {len(rows)} labels; retraining needs at least {settings.retrain_min_labels} (voxflow labels import FILE)")
    compact_feature_store(settings)
    data = assemble_training_set(rows, settings)
    check_trainable(data.labels, data.groups, min_rows=settings.retrain_min_labels, n_splits=settings.cv_splits)
    report = cross_validate_recipe(data, settings, what="Cross-validating the challenger")
    logger.info("Challenger CV: AUC %.3f ± %.3f, UAR %.3f, sensitivity %.3f, specificity %.3f (n=%d)", report.auc, report.auc_std, report.uar, report.sensitivity, report.specificity, report.n)
    champion_doc = models.champion()
    champion_bundle = resolve_bundle(models, settings.models_dir)
    champion = champion_bundle.card
    compared = champion_on_unseen_rows(champion_bundle, data, report, settings)
    if compared is None:
        champion_metrics, note = champion_on_same_folds(champion, data, settings)
        challenger_metrics = report.as_dict()
    else:
        challenger_metrics, champion_metrics, note = compared
    logger.info("Challenger %s against champion %s %s: %s", _brief(challenger_metrics), champion.version, _brief(champion_metrics), note)
    model = fit_final(data.features, data.labels, settings)
    training = {
        "source": "labels collection", "from_feature_store": data.from_store, "extracted": data.extracted,
        "dropped": len(data.dropped), "data_hash": data.data_hash,
    }
    fields = card_fields(report, model, data.features, cv=f"subject-grouped stratified {settings.cv_splits}x{settings.cv_repeats}", training=training)
    card = save_version(model.booster, fields, settings.models_dir, training_hashes=data.hashes)
    result = {
        "version": card.version, "champion_version": champion.version, "n": report.n, "dropped": len(data.dropped),
        "metrics": report.as_dict(), "compared_metrics": challenger_metrics, "champion_metrics": champion_metrics,
    }
    if card.version == champion.version:
        if champion_doc is not None:  # its folder now holds this save's card: its document says the same
            models.register(model_document(card, settings.models_dir))
        return {**result, "status": "champion", "reason": "identical to the champion (same data, same recipe)"}
    registered = models.register({
        **model_document(card, settings.models_dir), "compared_metrics": challenger_metrics, "champion_metrics": champion_metrics, "compared_with": note,
    })
    decision = unless_rolled_back(should_promote(challenger_metrics, champion_metrics, settings.promotion_margin), registered)
    with registry_changes(settings):
        decision = unless_champion_changed(decision, champion_doc, models.champion())
        if decision.promote:
            models.promote(card.version, decision.reason, check=usable_artifact(settings))
            logger.info("Promoted %s to champion (was %s): %s", card.version, champion_doc["version"] if champion_doc else f"shipped {champion.version}", decision.reason)
        else:
            models.set_reason(card.version, decision.reason)
    status = models.get(card.version)["status"]
    if not decision.promote:
        # Not always a challenger: a version rolled back before stays retired, one promoted by hand meanwhile is champion.
        logger.info("Not promoted: %s stays %s (%s)", card.version, status, decision.reason)
    return {**result, "status": status, "reason": decision.reason}
