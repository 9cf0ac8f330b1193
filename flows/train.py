"""Rebuild a screening model from a labelled manifest: features on Dask, subject-grouped CV, artifact."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from flows.run_log import send_to_run_log
from models.artifact import ModelCard, save_model
from models.drift import input_profile
from models.registry import save_version
from models.train import (
    DEFAULT_N_FEATURES,
    DEFAULT_PARAMS,
    DEFAULT_ROUNDS,
    CVReport,
    FittedModel,
    check_trainable,
    cross_validate,
    fit_model,
    keep_columns,
    select_columns,
)
from tasks.cluster import dask_client, first_worker_joined
from tasks.ingest import FileRef
from tasks.labels import LabelledRows, read_labels
from tasks.model_registry import code_version, register_model
from tasks.progress import step_reporter
from tasks.training_data import extract_on_cluster
from voxflow.errors import SourceError
from voxflow.settings import Settings, get_settings

VOICED_ATTRIBUTION = (
    "VOICED database (Cesari et al. 2018, PhysioNet, DOI 10.13026/C25Q2N), "
    "Open Data Commons Attribution License v1.0 (ODC-By 1.0)"
)
MIN_FILES = 20


def card_fields(report: CVReport, model: FittedModel, features: np.ndarray, *, cv: str, training: dict[str, Any]) -> dict[str, Any]:
    """The card of a model trained with the default recipe on ``features`` (FEATURE_NAMES columns), but its version and
    booster hash.

    ``training`` says where the data came from (its ``data_hash`` included); the row counts, the
    code version, the features the booster may use and the training features' profile (what runs are compared
    with, :mod:`models.drift`) are added here.
    """
    return {
        "feature_version": FEATURE_VERSION,
        "feature_names": FEATURE_NAMES,
        "threshold": round(report.threshold, 6),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training": {
            **training, "n": report.n, "n_positive": report.n_positive, "code_version": code_version(),
            "selected_features": [FEATURE_NAMES[i] for i in model.columns],
        },
        "metrics": {"cv": cv, **report.as_dict()},
        "params": {**DEFAULT_PARAMS, "rounds": DEFAULT_ROUNDS, "n_features": DEFAULT_N_FEATURES},
        "input_profile": input_profile(features, FEATURE_NAMES),
    }


def training_files(found: LabelledRows) -> tuple[list[FileRef], list[str]]:
    """The files to extract of a manifest's labelled rows, and each row left out, with why (``"where: reason"``).

    Rows are read by :func:`tasks.labels.read_labels`, as ``labels import`` and ``evaluate`` read them: a row
    whose label cannot be read, or whose audio is listed again with another label or subject, is left out.
    Each file keeps the hash it was read with (hashing it again doubled the reading of every file).
    """
    files = [replace(found.files[row.sha256], subject_id=row.subject_id) for row in found.rows if row.path]
    refused = [f"{r['row']}: {r['reason']}" for r in found.rejected]
    refused += [f"audio {row.sha256[:12]}: no path; train extracts every recording from its file" for row in found.rows if not row.path]
    return files, refused


def fit_final(features: np.ndarray, labels: np.ndarray, settings: Settings) -> FittedModel:
    """The default recipe's model on all rows: in this process, or from ``settings.distributed_training_rows`` rows
    across the Dask cluster (``xgboost.dask``)."""
    if len(labels) < settings.distributed_training_rows:
        return fit_model(features, labels)
    from models.distributed import fit_booster_dask

    columns = select_columns(features, labels, DEFAULT_N_FEATURES)
    with dask_client(settings) as client:
        first_worker_joined(client, timeout_s=settings.dask_worker_start_timeout_s)
        get_run_logger().info(
            "Training the final model on %d rows across the Dask cluster at %s (xgboost.dask: VOXFLOW_DISTRIBUTED_TRAINING_ROWS is %d)",
            len(labels), client.scheduler.address, settings.distributed_training_rows,
        )
        return FittedModel(fit_booster_dask(client, keep_columns(features, columns), labels), columns)


@task(name="extract-training-features", cache_policy=NO_CACHE)
def extract_training_features(files: list[FileRef], settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Features for every labelled file, computed on the Dask cluster by the analyze code path."""
    rows, rejected = [], []
    with dask_client(settings) as client:
        for chunk_rows, chunk_rejected in extract_on_cluster(client, files, settings):
            rows.extend(chunk_rows)
            rejected.extend(chunk_rejected)
    return rows, rejected


@flow(name="train-model")
def train_model(manifest: str, out_dir: str | None = None, positive: str | None = None, promote: bool = False, dataset: str = "") -> dict[str, Any]:
    """Train, cross-validate and save a model from a manifest with ``path``, ``label``, ``subject_id``.

    Parameters
    ----------
    manifest : str
        CSV/Parquet manifest, its labels read as ``labels import`` and ``evaluate`` read them (:func:`training_files`);
        the rows left out, audio listed with conflicting labels or subjects included, are counted on the card.
    out_dir : str, optional
        Where to write the model folder (not registered); default ``VOXFLOW_HOME/models/<version>``, registered.
    positive : str, optional
        The label value that means "screen positive"; default accepts 0/1 or pathological/healthy in any case.
    promote : bool
        Make the new model the champion that analyze uses.
    dataset : str
        Name and licence of the training data, recorded on the model card.
    """
    if out_dir and promote:
        raise ValueError("out_dir writes a model folder that is not registered, and only a registered model can be promoted: pass one of them")
    settings = get_settings()
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    max_bytes = int(settings.max_file_mb * 1e6)
    found = read_labels(Path(manifest), positive=positive, max_file_bytes=max_bytes)
    files, refused = training_files(found)
    if found.conflicts:
        logger.warning("%d audio listed with conflicting labels or subjects: each of their rows left out", found.conflicts)
    if len(files) < MIN_FILES:
        example = f" ({len(refused)} rows left out, e.g. {refused[0]})" if refused else ""
        raise SourceError(f"manifest {manifest} has {len(files)} labelled, readable files; training needs at least {MIN_FILES}{example}")
    rows, extract_rejected = extract_training_features(files, settings)
    rejected = refused + [f"{r['path']}: {r['reason']}" for r in extract_rejected]
    if rejected:
        logger.warning("%d training rows left out: %s", len(rejected), "; ".join(rejected[:5]))
    rows.sort(key=lambda row: row["path"])
    label_of = {row.sha256: row.label for row in found.rows}
    features = np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=np.float64)
    labels = np.array([label_of[row["audio_sha256"]] for row in rows], dtype=np.int32)
    groups = np.array([row["subject_id"] or row["audio_sha256"] for row in rows])
    check_trainable(labels, groups, min_rows=MIN_FILES, n_splits=settings.cv_splits)
    report = cross_validate(
        features, labels, groups, n_splits=settings.cv_splits, n_repeats=settings.cv_repeats, target_sensitivity=settings.target_sensitivity,
        on_fold=step_reporter("Cross-validating", settings.cv_splits * settings.cv_repeats, "folds"),
    )
    logger.info("Cross-validated: AUC %.3f ± %.3f, UAR %.3f (n=%d)", report.auc, report.auc_std, report.uar, report.n)
    model = fit_final(features, labels, settings)
    data_hash = hashlib.sha256("\n".join(sorted(f"{r['audio_sha256']}:{label}" for r, label in zip(rows, labels))).encode()).hexdigest()
    fields = card_fields(
        report, model, features, cv=f"subject-grouped stratified {settings.cv_splits}x{settings.cv_repeats}",
        training={
            "manifest": Path(manifest).name, "dataset": dataset, "positive_label": positive, "rejected": len(rejected),
            "conflicts": found.conflicts, "data_hash": data_hash,
        },
    )
    trained_on = [row["audio_sha256"] for row in rows]
    if out_dir:
        card: ModelCard = save_model(model.booster, fields, Path(out_dir), training_hashes=trained_on)
    else:
        card = save_version(model.booster, fields, settings.models_dir, training_hashes=trained_on)
        register_model(card, settings, promote=promote)
    logger.info("Model %s saved (threshold %.3f)%s", card.version, card.threshold, " and promoted to champion" if promote else "")
    return card.to_dict()
