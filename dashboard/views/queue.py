"""Queue: backlog over time, the oldest waiting entry, and each consumer's unacknowledged entries."""

from __future__ import annotations

import streamlit as st

from dashboard import context, queries
from dashboard.charts import time_series


def body(page: context.Page) -> None:
    settings, opened, tz = page.settings, page.stores, page.tz
    state = queries.queue_state(opened.redis)
    if not state.exists:
        st.info(f"No queue yet: the stream `{queries.QUEUE_STREAM}` does not exist. Batches run by `voxflow analyze` do not queue.")
    else:
        cols = st.columns(4)
        cols[0].metric("Backlog", f"{state.backlog:,} files", help="not yet delivered + delivered but not acknowledged")
        cols[1].metric("Not yet delivered", f"{state.undelivered:,} files")
        cols[2].metric("Pending (unacknowledged)", f"{state.pending:,} files")
        cols[3].metric("Oldest waiting", "—" if state.oldest_age_s is None else f"{state.oldest_age_s:,.0f} s")
        st.subheader(f"Consumers of group `{queries.QUEUE_GROUP}`")
        if state.consumers is None or state.consumers.empty:
            st.info("No consumer has read from the queue yet.")
        else:
            st.dataframe(state.consumers, hide_index=True, column_config={"idle_s": st.column_config.NumberColumn("idle (s)", format="%.1f")})

    st.subheader(f"Backlog over time (last {settings.dashboard_window_h:g} h)")
    since = queries.utc_since(settings.dashboard_window_h)
    samples = queries.worker_samples(opened.redis, since).dropna(subset=["backlog"])
    if samples.empty and opened.db is not None:
        samples = queries.scaling_events(opened.db, since).dropna(subset=["backlog"])
    if samples.empty:
        st.info("No backlog samples yet: runs record them with each chunk and scaling event.")
    else:
        samples = samples.assign(time=context.local_times(samples["time"], tz))
        st.altair_chart(time_series(samples, x="time", y="backlog", x_title=f"time ({tz})", y_title="backlog (files)", segment="run_id"), width="stretch")

context.show("Queue", body, needs="redis", unavailable="The queue lives in Redis; it shows again once Redis answers.")
