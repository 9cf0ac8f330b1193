"""Check a labelled cohort before retraining: the retrain flow's subject-grouped repeated CV on any manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.retrain import assemble_training_set, cross_validate_recipe
from flows.run_log import send_to_run_log
from models.train import check_trainable
from tasks.labels import read_labels
from voxflow.errors import SourceError
from voxflow.settings import get_settings


@flow(name="evaluate-manifest")
def evaluate_manifest(manifest: str, positive: str | None = None) -> dict[str, Any]:
    """Cross-validate the current recipe on MANIFEST (path, label, optional subject_id); nothing is registered.

    Parameters
    ----------
    manifest : str
        CSV/Parquet; relative paths resolve against its folder; without ``subject_id`` each recording is its own subject.
    positive : str, optional
        The label value that means screen-positive; default accepts 0/1 or pathological/healthy.

    Returns
    -------
    dict
        The CV metrics (auc, uar, f1, sensitivity, specificity, brier, threshold, calibration...), n, dropped,
        rejected, conflicts (audio whose rows disagree), by_sha256 (rows whose unreadable file their sha256 stood in for)
        and ``negative_labels``: how many rows each label value made negative.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    logger = get_run_logger()
    path = Path(manifest)
    if not path.is_file():
        raise SourceError(f"manifest {manifest} does not exist")
    found = read_labels(path, positive=positive, max_file_bytes=int(settings.max_file_mb * 1e6))
    for refused in found.rejected[:5]:
        logger.warning("Row %s left out: %s", refused["row"], refused["reason"])
    negatives = found.negative_labels
    logger.info("Counted negative: %s", ", ".join(f"{value} ({n} rows)" for value, n in negatives.items()) or "none")
    data = assemble_training_set(found.rows, settings)
    check_trainable(data.labels, data.groups, min_rows=settings.retrain_min_labels, n_splits=settings.cv_splits)
    report = cross_validate_recipe(data, settings)
    logger.info("Evaluated %s: AUC %.3f ± %.3f, UAR %.3f (n=%d)", path.name, report.auc, report.auc_std, report.uar, report.n)
    return {
        **report.as_dict(), "rejected": len(found.rejected), "conflicts": found.conflicts, "by_sha256": len(found.by_sha256),
        "dropped": len(data.dropped), "negative_labels": negatives,
    }
