"""Models: champion and challengers with metrics, this week's scores against the training data, the champion's last
outcomes check on labelled recordings, the last backup."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, queries
from dashboard.champion import current_champion
from dashboard.charts import bars, time_series
from models.outcomes import Verification
from store.outcome_checks import outcome_checks

WEEK_H = 24 * 7


def body(page: context.Page) -> None:
    db, tz = page.stores.db, page.tz
    context.rollup_hint(db)
    champion = current_champion(db, page.settings)
    st.metric("Champion", champion.version, help=f"from the {champion.source}")

    st.subheader("Champion and challengers")
    registered = queries.model_documents(db)
    if registered.empty:
        st.caption("No `models` collection yet: the champion comes from the model registry files.")
        registered = pd.DataFrame([{"version": champion.version, "status": "champion", "metrics": champion.metrics}])
    metrics = pd.json_normalize(registered["metrics"].map(lambda m: m or {}).tolist())
    keep = [c for c in ("auc", "uar", "f1", "sensitivity", "specificity", "brier", "threshold", "n") if c in metrics.columns]
    table = pd.concat([registered[["version", "status"]].reset_index(drop=True), metrics[keep]], axis=1)
    st.dataframe(table, hide_index=True)

    st.subheader("Score drift: this week against the training data")
    scores = queries.score_distribution(db, queries.utc_since(WEEK_H), model_version=champion.version)
    cols = st.columns(3)
    week_share = scores.positive / scores.total if scores.total else None
    cols[0].metric("Clips scored this week", f"{scores.total:,}")
    cols[1].metric(f"Screen-{champion.positive_label} this week", "—" if week_share is None else f"{week_share:.1%}")
    train = champion.training_positive_share
    delta = None if week_share is None or train is None else f"{100 * (week_share - train):+.1f} pp vs training"
    cols[2].metric(f"{champion.positive_label.capitalize()} in training data", "—" if train is None else f"{train:.1%}", delta=delta, delta_color="off")
    if scores.total:
        histogram = scores.histogram.assign(
            bin=lambda f: f["bin_start"].map(lambda b: f"{b:.1f}–{b + 1 / queries.SCORE_BINS:.1f}"), percent=lambda f: 100 * f["share"])
        st.altair_chart(bars(histogram, x="bin", y="percent", x_title=f"score (probability of {champion.positive_label})", y_title="clips this week (%)"), width="stretch")
    else:
        st.info("No clips scored by the champion this week.")

    st.subheader("Outcomes: the champion on labelled recordings")
    checks = outcome_checks(db, champion.version)
    if not checks:
        st.info("No outcomes check of the champion yet: the `model-outcomes-weekly` deployment records one each week; "
                "`voxflow outcomes` measures it now, once `voxflow labels import` has brought the diagnoses of recordings it scored.")
    else:
        outcomes(checks[0], tz)
        auc_over_time(checks)

    st.subheader("Last backup")
    backup = queries.last_backup(db)
    if backup is None:
        st.info("No backups yet.")
    else:
        cols = st.columns(3)
        cols[0].metric("Last backup", context.local_text(backup.get("finished_at") or backup.get("started_at"), tz), help=f"times in {tz}")
        cols[1].metric("Status", str(backup.get("status", "—")))
        cols[2].metric("Verified", "yes" if backup.get("verified") else "no")
        counts = backup.get("counts") or {}
        if counts:
            st.dataframe(pd.DataFrame([{"collection": k, "documents": v} for k, v in counts.items()]), hide_index=True)
        (st.success if backup.get("verified") else st.warning)(
            f"Backup {backup.get('backup_id', '')} at {backup.get('path', '—')}: " + ("verified." if backup.get("verified") else "not verified."))
        if backup.get("prune_error"):
            st.warning(f"Old backups were not pruned: {backup['prune_error']}")


def outcomes(check: dict, tz: str) -> None:
    """The last outcomes check: when, on how many recordings, each metric against the card, the groups worse."""
    groups_worse = [name for name, group in check.get("groups", {}).items() if group["worse"]]
    cols = st.columns(3)
    cols[0].metric("Checked", context.local_text(check["checked_at"], tz), help=f"times in {tz}")
    cols[1].metric("Labelled recordings measured", f"{check['n']:,}", help="scored by the champion, never trained on, nor their subjects")
    cols[2].metric("Metrics worse than its card", len(check["worse"]) if check["metrics"] else "—")
    if check["metrics"]:
        st.dataframe(pd.DataFrame([
            {"metric": m["metric"], **({"live": m["live"]["value"], "95% low": m["live"]["low"], "95% high": m["live"]["high"]} if m["live"] else {}),
             "cross-validated": m["expected"],
             **({"card 95% low": m["expected_interval"]["low"], "card 95% high": m["expected_interval"]["high"]} if m.get("expected_interval") else {}),
             "verdict": m["verdict"]}
            for m in check["metrics"]
        ]), hide_index=True)
    if (verification := check.get("verification")) and not (told := Verification(**verification)).complete:
        st.caption(f"{told.text()[0].upper()}{told.text()[1:]}: the corrected sensitivity, specificity and UAR count the rest as the labelled of each kind stand for them.")
    if groups_worse:
        st.caption(f"By {check['by']}, worse in: {', '.join(groups_worse)}")
    (st.warning if check["worse"] or groups_worse else st.caption)(check["summary"])


def auc_over_time(checks: list[dict]) -> None:
    """The champion's AUC at each check that kept its metrics, with its interval, beside the card's estimate."""
    rows = []
    for check in checks:
        auc = next((m for m in check["metrics"] if m["metric"] == "auc" and m["live"]), None)
        if auc is not None:
            rows += [{"checked_at": check["checked_at"], "series": series, "auc": value} for series, value in (
                ("on labelled recordings", auc["live"]["value"]), ("95% low", auc["live"]["low"]), ("95% high", auc["live"]["high"]),
                ("cross-validated (card)", auc["expected"]))]
    if len({row["checked_at"] for row in rows}) >= 2:
        frame = pd.DataFrame(rows)
        st.altair_chart(time_series(frame, x="checked_at", y="auc", x_title="checked", y_title="AUC", color="series"), width="stretch")


context.show("Models", body, needs="mongo", unavailable="Model records and backups are in MongoDB; they show again once the server answers.")
