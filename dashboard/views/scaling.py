"""Scaling: Dask workers over time, tasks processing and queued, per-worker CPU and memory."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, queries
from dashboard.charts import bars, time_series


def _last_task_sample(samples: pd.DataFrame, tz: str) -> None:
    """The task counts of the latest worker sample that carries them, as metrics (shown while no scheduler answers)."""
    counted = samples.dropna(subset=["processing", "queued"])
    if counted.empty:
        return
    last = counted.iloc[-1]
    cols = st.columns(3)
    cols[0].metric("Tasks processing (last sample)", f"{int(last['processing'])}")
    cols[1].metric("Tasks queued (last sample)", f"{int(last['queued'])}")
    cols[2].metric("Last sample", context.local_text(last["time"], tz), help=f"from `{queries.WORKERS_STREAM}`, times in {tz}")


def body(page: context.Page) -> None:
    settings, opened, tz = page.settings, page.stores, page.tz
    since = queries.utc_since(settings.dashboard_window_h)
    window = f"last {settings.dashboard_window_h:g} h"

    cluster = context.cluster()
    st.subheader("Dask scheduler")
    if settings.dask_address is None:
        st.info("No Dask scheduler configured (VOXFLOW_DASK_ADDRESS): each run starts its own LocalCluster, which lives only as long as the run.")
    elif cluster is None:
        st.warning(f"The Dask scheduler at {settings.dask_address} does not answer.")
    else:
        cols = st.columns(4)
        cols[0].metric("Workers", f"{len(cluster.workers)}")
        cols[1].metric("Tasks processing", f"{cluster.processing}")
        cols[2].metric("Tasks queued on workers", f"{cluster.queued}")
        cols[3].metric("Mean CPU", "—" if cluster.cpu_pct is None else f"{cluster.cpu_pct:.0f}%")
        if cluster.dashboard_url:
            st.link_button("Open the Dask dashboard", cluster.dashboard_url)
        if len(cluster.workers):
            st.dataframe(cluster.workers, hide_index=True)
            st.altair_chart(bars(cluster.workers, x="worker", y="cpu_pct", x_title="worker", y_title="CPU (%)"), width="stretch")
            st.altair_chart(bars(cluster.workers, x="worker", y="memory_mb", x_title="worker", y_title="memory (MB)"), width="stretch")

    st.subheader(f"Workers over time ({window})")
    events = queries.scaling_events(opened.db, since) if opened.db is not None else None
    samples = queries.worker_samples(opened.redis, since) if opened.redis is not None else None
    if samples is not None and not samples["workers"].dropna().empty:
        shown = samples.dropna(subset=["workers"]).assign(time=lambda f: context.local_times(f["time"], tz))
        st.altair_chart(time_series(shown, x="time", y="workers", x_title=f"time ({tz})", y_title="workers", mark="step", segment="run_id"), width="stretch")
    elif events is not None and not events.empty:
        shown = events.assign(time=context.local_times(events["time"], tz), workers=events["workers_after"])
        st.altair_chart(time_series(shown, x="time", y="workers", x_title=f"time ({tz})", y_title="workers", mark="step", segment="run_id"), width="stretch")
    else:
        st.info(f"No worker samples or scaling events in the {window}.")

    st.subheader(f"Tasks processing and queued ({window})")
    if samples is None or samples[["processing", "queued"]].dropna(how="all").empty:
        st.info(f"No task samples (`{queries.WORKERS_STREAM}`) in the {window}.")
    else:
        if cluster is None:
            _last_task_sample(samples, tz)
        long = samples.assign(time=context.local_times(samples["time"], tz)).melt(
            id_vars=["time", "run_id"], value_vars=["processing", "queued"], var_name="tasks", value_name="count").dropna()
        st.altair_chart(time_series(long, x="time", y="count", x_title=f"time ({tz})", y_title="tasks", color="tasks", segment="run_id"), width="stretch")

    st.subheader(f"Scaling events ({window})")
    if events is None or events.empty:
        st.info("No scaling events yet.")
    else:
        st.metric("Scaling events", f"{len(events)}")
        table = events.assign(time=context.local_times(events["time"], tz))
        st.dataframe(table, hide_index=True, column_config={"time": st.column_config.DatetimeColumn(f"time ({tz})", format="YYYY-MM-DD HH:mm:ss")})


context.show("Scaling", body)
