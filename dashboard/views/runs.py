"""Runs: recent runs with their counts and speed; one run's quarantine reasons; links to the Prefect UI."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, queries
from dashboard.charts import bars


def _shown(value: object, template: str) -> str:
    """``value`` written with ``template``, or "—" for a field the run document does not have (yet)."""
    return "—" if value is None or pd.isna(value) else template.format(value)


def body(page: context.Page) -> None:
    settings, db, tz = page.settings, page.stores.db, page.tz
    runs = queries.recent_runs(db)
    if runs.empty:
        st.info("No runs yet: `voxflow analyze SOURCE` records one.")
        return
    ui = settings.prefect_ui_url.rstrip("/") if settings.prefect_ui_url else None
    table = runs.assign(
        started_at=context.local_times(runs["started_at"], tz),
        finished_at=context.local_times(runs["finished_at"], tz),
        input_drift=runs["input_drift"].map(lambda report: report.get("brief") if isinstance(report, dict) else None),
    )
    config = {
        "started_at": st.column_config.DatetimeColumn(f"started ({tz})", format="YYYY-MM-DD HH:mm:ss"),
        "finished_at": st.column_config.DatetimeColumn(f"finished ({tz})", format="YYYY-MM-DD HH:mm:ss"),
        "wall_s": st.column_config.NumberColumn("wall (s)", format="%.1f"),
        "clips_per_s": st.column_config.NumberColumn("clips/s", format="%.2f"),
        "input_drift": st.column_config.TextColumn("input drift", help="features of the scored recordings shifted from the model's training data"),
    }
    if ui:
        table["prefect"] = ui + "/runs/flow-run/" + table["run_id"]
        config["prefect"] = st.column_config.LinkColumn("Prefect UI", display_text="open")
    st.subheader(f"Recent runs ({len(runs)})")
    st.dataframe(table, hide_index=True, column_config=config)

    st.subheader("One run")
    run_id = st.selectbox("Run", runs["run_id"], format_func=lambda r: f"{r} · {runs.set_index('run_id').at[r, 'source']}")
    run = runs.set_index("run_id").loc[run_id]
    cols = st.columns(6)
    cols[0].metric("Status", str(run["status"]))
    # A run's counts and timings are written when it finishes: a running or failed run has none.
    cols[1].metric("Scored", _shown(run["scored"], "{:,.0f}"))
    cols[2].metric("Quarantined", _shown(run["quarantined"], "{:,.0f}"))
    cols[3].metric("Duplicates", _shown(run["duplicates"], "{:,.0f}"),
                   help=f"files with the same content as one listed before them, analysed once under that one's name: `voxflow quarantine --run {run_id}` names each")
    cols[4].metric("Wall time", _shown(run["wall_s"], "{:.1f} s"))
    cols[5].metric("Throughput", _shown(run["clips_per_s"], "{:.2f} clips/s"))
    if run["status"] == "running":
        st.info("Still running: its counts and timings are recorded when it finishes.")
    elif run["status"] == "paused":
        st.info("Paused while recordings are forgotten (voxflow forget): it goes on once the forget is done.")
    elif isinstance(run["error"], str):
        st.warning(f"{str(run['status']).capitalize()}: {run['error']}")  # failed, or crashed (its process ended)
    drift = run["input_drift"]
    if isinstance(drift, dict):
        shown = st.warning if drift.get("shifted_count") else st.caption
        shown(f"Input drift: {drift['summary']}")
    if ui:
        st.link_button("Open this run in the Prefect UI", f"{ui}/runs/flow-run/{run_id}")
    reasons = queries.quarantine_reasons(db, run_id)
    if reasons.empty:
        st.success("Nothing quarantined in this run.")
    else:
        st.dataframe(reasons, hide_index=True)
        by_stage = reasons.groupby("stage", as_index=False)["files"].sum()
        st.altair_chart(bars(by_stage, x="stage", y="files", x_title="stage", y_title="quarantined files"), width="stretch")


context.show("Runs", body, needs="mongo", unavailable="Runs are stored in MongoDB; they show again once the server answers.")
