"""Overview: throughput, daily volume, quarantine and error rates, latency, the champion, the scaling triggers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st
from pymongo.database import Database

from dashboard import context, queries
from dashboard.champion import current_champion
from dashboard.charts import bars, time_series
from dashboard.connections import DashboardStores
from dashboard.indicators import indicators
from store.counts import COUNTS, counts_missing
from voxflow.scaling import Bounds, Signals, Thresholds

DAYS_SHOWN = 14
CHART_HOURS = 6
# A worker sample older than this may describe a cluster that is gone (runs sample after every chunk).
LIVE_SAMPLE_S = 120


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _latency(opened: DashboardStores, since: datetime, window: str) -> tuple[float | None, float | None, str]:
    """p50/p95 in seconds over the newest files since ``since``: queue latency when the queue reports it, else per-file processing time."""
    sample = f"over the newest {queries.LATENCY_SAMPLE:,} files of the {window} at most"
    if opened.redis is not None:
        samples = queries.latency_samples(opened.redis, since)["latency_s"].dropna()
        if len(samples):
            return float(samples.quantile(0.5)), float(samples.quantile(0.95)), f"enqueue to persist (voxflow:metrics:latency), {sample}"
    recent = queries.recent_predictions(opened.db, since)
    p50, p95 = (None if ms is None else ms / 1000 for ms in queries.processing_percentiles(recent, since))
    return p50, p95, f"per-file processing, decode + features (predictions), {sample}"


def _live_sample(opened: DashboardStores) -> pd.Series | None:
    """The newest worker sample of the last LIVE_SAMPLE_S: a run going now, or just ended."""
    return queries.last_worker_sample(opened.redis, queries.utc_since(LIVE_SAMPLE_S / 3600)) if opened.redis is not None else None


def _cluster_load(last: pd.Series | None, min_workers: int) -> tuple[float | None, float | None, int]:
    """CPU %, memory % and workers: from the Dask scheduler when one is reachable, else the live worker sample ``last``."""
    cluster = context.cluster()
    if cluster is not None:
        return cluster.cpu_pct, cluster.memory_pct, len(cluster.workers)
    if last is None:
        return None, None, min_workers
    cpu, memory, workers = (None if pd.isna(last[name]) else float(last[name]) for name in ("cpu_pct", "memory_pct", "workers"))
    return cpu, memory, min_workers if workers is None else int(workers)


def _backlog(db: Database, queue: queries.QueueState | None, live: pd.Series | None) -> int | None:
    """Files waiting: the queue's backlog plus the files a running analyze has not yet done (its live sample).

    A drain's sample is left out: its batch's files are the queue's entries it holds, counted there already.
    None when neither says anything.
    """
    queued = queue.backlog if queue is not None and queue.exists else None
    running = None if live is None or pd.isna(live["backlog"]) or queries.is_drain_run(db, live["run_id"]) else int(live["backlog"])
    return None if queued is None and running is None else (queued or 0) + (running or 0)


def _per_day(db: Database, stored: int, tz: str) -> None:
    """Today's counts and the last DAYS_SHOWN local days from the ``prediction_counts`` rollup."""
    today = queries.local_today(tz)
    per_day = queries.counts_per_day(db, queries.day_start(today - timedelta(days=DAYS_SHOWN - 1), tz), tz)
    shown_today = per_day[per_day["day"] == pd.Timestamp(today)]
    scored, positive, quarantined = (int(shown_today[name].sum()) for name in ("predictions", "positives", "quarantined"))
    cols = st.columns(3)
    cols[0].metric("Scored today", f"{scored:,}", help=f"predictions stored since midnight ({tz})")
    cols[1].metric("Screen-positive today", f"{positive:,}" + (f" ({positive / scored:.1%})" if scored else ""),
                   help="score at or above the model's threshold")
    cols[2].metric("Quarantined today", f"{quarantined:,}")
    if per_day.empty:
        if stored and counts_missing(db):
            st.info(f"Per-day counts are not built for this database yet: the next `voxflow analyze` or queue drain builds `{COUNTS}` from the stored predictions.")
        else:
            st.info(f"No predictions in the last {DAYS_SHOWN} days.")
        return
    long = per_day.assign(day=per_day["day"].dt.strftime("%Y-%m-%d")).rename(columns={"predictions": "scored"}).melt(
        id_vars="day", value_vars=["scored", "quarantined"], var_name="files", value_name="count")
    st.altair_chart(bars(long, x="day", y="count", x_title=f"day ({tz})", y_title="files per day", color="files"), width="stretch")


def body(page: context.Page) -> None:
    settings, opened, tz = page.settings, page.stores, page.tz
    db = opened.db
    context.rollup_hint(db)
    since = queries.utc_since(settings.dashboard_window_h)
    chart_since = queries.utc_since(CHART_HOURS)
    window = f"last {settings.dashboard_window_h:g} h"
    stored = queries.predictions_count(db)
    totals = queries.run_totals(db, since)
    p50, p95, latency_source = _latency(opened, since, window)
    champion = current_champion(db, settings)

    cols = st.columns(4)
    cols[0].metric("Predictions stored", f"{stored:,}")
    cols[1].metric(f"Runs ({window})", f"{totals.runs:,}")
    finished = "of the finished runs (a run's counts are recorded when it ends)"
    cols[2].metric(f"Quarantine rate ({window})", _rate(totals.quarantine_rate), help=f"quarantined / (scored + quarantined) {finished}")
    cols[3].metric(f"Error rate ({window})", _rate(totals.error_rate),
                   help="pipeline failures (stages " + ", ".join(queries.ERROR_STAGES) + f") / analysed {finished}")
    cols = st.columns(4)
    cols[0].metric("Latency p50", "—" if p50 is None else f"{p50:.3f} s", help=latency_source)
    cols[1].metric("Latency p95", "—" if p95 is None else f"{p95:.3f} s", help=latency_source)
    cols[2].metric("Champion model", champion.version, help=f"from the {champion.source}")
    cols[3].metric(f"Files analysed ({window})", f"{totals.analysed:,}", help=finished)
    st.caption(f"Latency: {latency_source}. Times in {tz}.")

    if stored == 0 and totals.runs == 0:
        st.info("No runs yet: `voxflow analyze SOURCE` scores a folder, glob or manifest, and this page fills in.")

    st.subheader("Scaling triggers")
    live = _live_sample(opened)
    bounds = Bounds.of(settings)
    cpu, memory, n_workers = _cluster_load(live, bounds.min_workers)
    queue = queries.queue_state(opened.redis) if opened.redis is not None else None
    signals = Signals(cpu_pct=cpu, p95_latency_s=p95, error_rate=totals.error_rate, backlog=_backlog(db, queue, live), memory_pct=memory)
    shown = indicators(signals, Thresholds.from_settings(settings), workers=n_workers, bounds=bounds)
    cols = st.columns(len(shown.rows))
    for col, row in zip(cols, shown.rows):
        col.metric(row.label, row.value, delta=f"{row.state} (threshold {row.threshold})",
                   delta_color={"firing": "inverse", "ok": "normal"}.get(row.state, "off"), delta_arrow="off")
    (st.warning if shown.action != "hold" else st.success)(f"Recommendation: {shown.advice} — {shown.reason}")

    st.subheader(f"Clips per quarter hour (last {CHART_HOURS} h)")
    quarters = queries.counts_per_quarter_hour(db, chart_since)
    if quarters.empty:
        st.info(f"No clips scored in the last {CHART_HOURS} h.")
    else:
        quarters = quarters.assign(start=context.local_times(quarters["start"], tz))
        st.altair_chart(time_series(quarters, x="start", y="predictions", x_title=f"quarter hour starting ({tz})", y_title="clips scored"), width="stretch")

    st.subheader(f"Files per day (last {DAYS_SHOWN} days)")
    _per_day(db, stored, tz)


context.show("Overview", body, needs="mongo", unavailable="The overview needs MongoDB; it shows again once the server answers.")
