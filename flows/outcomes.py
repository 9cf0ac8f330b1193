"""The ``model-outcomes`` flow: measure the champion on the recordings it scored whose reference labels have arrived,
weekly; record the check for the dashboard and as the flow run's Prefect artifact, and raise a Prefect event when it
does worse than its card says, for automations to act on."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import Field

from flows.model_events import emit_model_event
from flows.run_log import send_to_run_log
from models.outcomes import Interval
from store.mongo import open_database
from store.outcome_checks import record_outcome_check
from tasks.outcomes import STORED_FLOOR, OutcomeReport, model_outcomes
from voxflow import services
from voxflow.settings import get_settings

WORSE_EVENT = "voxflow.outcomes.worse"


def announce_outcomes(report: OutcomeReport, **context: Any) -> None:
    """Log ``report`` (a WARNING when a metric, overall or in a group, is worse than the card says) and, then, emit
    :data:`WORSE_EVENT` about its model with the verdicts and ``context`` as its payload."""
    logger = get_run_logger()
    logger.info("Outcomes: %s", report.header())
    if said := report.verification_line():
        logger.info(said)
    worse_groups = {name: outcomes.worse for name, outcomes in report.groups.items() if outcomes.worse}
    if not (report.overall.worse or worse_groups):
        logger.info("Outcomes: %s", report.line())
        return
    logger.warning(
        "Outcomes: %s. The model screens these recordings worse than its cross-validation promised: check what changed "
        "(cohort, recording setup, input drift), or retrain on the labelled recordings",
        report.line(),
    )
    emit_model_event(WORSE_EVENT, report.model_version, {
        "summary": report.line(), "n": report.overall.n, "worse": report.overall.worse, "by": report.by, "groups_worse": worse_groups, **context,
    })


def outcomes_markdown(stored: dict[str, Any]) -> str:
    """A check as kept (:meth:`tasks.outcomes.OutcomeReport.as_stored`), as the flow run's Prefect artifact shows it."""
    def cell(live: dict[str, float] | None) -> str:
        return "too few" if live is None else Interval(**live).text()

    def card(metric: dict[str, Any]) -> str:  # a check stored before the card's intervals has its estimate alone
        if metric["expected"] is None:
            return "-"
        return Interval(**metric["expected_interval"]).text() if metric.get("expected_interval") else str(metric["expected"])

    lines = [f"# Outcomes of {stored['model_version']}", "", stored["summary"], ""]
    if stored["metrics"]:
        lines += ["| metric | on labelled recordings (95% interval) | cross-validated (its cohort's 95% interval) | verdict |", "|---|---|---|---|"]
        lines += [f"| {m['metric']} | {cell(m['live'])} | {card(m)} | {m['verdict']} |" for m in stored["metrics"]]
    if stored["groups"]:
        lines += ["", f"By {stored['by']} ({stored['group_level']:.1%} intervals):", "", "| group | n | positive | auc | sensitivity | specificity | worse |",
                  "|---|---|---|---|---|---|---|"]
        for name, group in stored["groups"].items():
            live = {m["metric"]: cell(m["live"]) for m in group["metrics"]}
            lines.append(f"| {name} | {group['n']} | {group['n_positive']} | {live['auc']} | {live['sensitivity']} | {live['specificity']} | "
                         f"{', '.join(group['worse']) or '-'} |")
    if left := stored["groups_not_kept"]:
        said = "1 group" if left == 1 else f"{left} groups"
        lines += [""] * (lines[-1] != "") + [f"{said} of fewer than {STORED_FLOOR} recordings {'is' if left == 1 else 'are'} not shown."]
    return "\n".join(lines) + "\n"


@flow(name="model-outcomes")
def model_outcomes_check(
    days: Annotated[float | None, Field(ge=0.01, le=366 * 100)] = None, model_version: str | None = None, by: str | None = None
) -> dict[str, Any]:
    """Measure a model on its predictions of labelled recordings (``voxflow outcomes``).

    Parameters
    ----------
    days : float, optional
        Only predictions stored in the last this many days; default: all.
    model_version : str, optional
        A registered model version; default is the champion (or the shipped baseline).
    by : str, optional
        A label metadata field whose groups are measured apart too.

    Returns
    -------
    dict
        ``voxflow outcomes --json``'s report.
    """
    settings = get_settings()
    send_to_run_log(settings.log_level)
    checked_at = datetime.now(timezone.utc)
    report = model_outcomes(settings, model_version=model_version, days=days, by=by, now=checked_at)
    announce_outcomes(report, days=days)
    stored = report.as_stored()
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        record_outcome_check(db, {**stored, "checked_at": checked_at, "days": days, "flow_run_id": str(flow_run.id)})
    create_markdown_artifact(markdown=outcomes_markdown(stored), key="model-outcomes", description=stored["summary"])
    return report.as_doc()
