"""The ``input-drift`` flow: compare what the champion scored lately, over every run and queue drain, with its training
data, daily; and the Prefect event that a shift raises, here and in a run that finds one, for automations to act on."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from flows.model_events import emit_model_event
from flows.run_log import send_to_run_log
from models.drift import SHOWN, DriftReport
from tasks.drift_check import recent_drift
from voxflow.settings import get_settings

SHIFT_EVENT = "voxflow.input-drift.shifted"


def announce_shift(report: DriftReport, **context: Any) -> None:
    """Log a report of a run or a window (a WARNING when some feature shifted) and, then, emit :data:`SHIFT_EVENT`
    about its model, with the report's summary and ``context`` (a run id, a window) as its payload."""
    logger = get_run_logger()
    if not report.shifted:
        logger.info("Input drift: %s", report.line())
        return
    logger.warning(
        "Input drift: %s. Scores of recordings unlike the training data are no evidence: check how these were recorded "
        "(microphone, sample rate, room, task), or retrain on labelled ones like them",
        report.line(),
    )
    emit_model_event(SHIFT_EVENT, report.model_version, {
        "summary": report.line(), "shifted_count": len(report.shifted), "shifted_read": report.shifted_read, "n": report.n,
        "features": [shift.feature for shift in report.shifted[:SHOWN]], **context,
    })


@flow(name="input-drift")
def input_drift(hours: Annotated[float, Field(ge=0.1, le=24 * 366)] = 24.0, model_version: str | None = None) -> dict[str, Any]:
    """Compare what a model scored in the last ``hours`` with its training data (``voxflow drift``).

    Parameters
    ----------
    hours : float
        The window: predictions stored in the last this many hours.
    model_version : str, optional
        A registered model version; default is the champion (or the shipped baseline).

    Returns
    -------
    dict
        ``voxflow drift --json``'s comparison.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    checked = recent_drift(settings, hours=hours, model_version=model_version)
    get_run_logger().info(checked.line())
    announce_shift(checked.report, window_hours=hours, since=checked.since.isoformat(timespec="seconds"))
    return checked.as_doc()
