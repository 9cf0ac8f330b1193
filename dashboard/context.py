"""What every page shares: settings, the read-only stores, the unreachable-store banner, auto-refresh, local times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import pandas as pd
import pymongo.errors
import redis
import streamlit as st
from pymongo.database import Database

from dashboard.cluster import ClusterSnapshot, read_scheduler
from dashboard.connections import DashboardStores, open_stores
from store.counts import counts_missing
from voxflow.settings import Settings, get_settings

# What a query raises when its server went away after the stores were opened.
STORE_ERRORS = (redis.RedisError, pymongo.errors.PyMongoError)


def settings() -> Settings:
    """The process-wide voxflow settings."""
    return get_settings()


@st.cache_resource(show_spinner=False)
def _cached_stores() -> DashboardStores:
    return open_stores(get_settings())


def stores() -> DashboardStores:
    """The stores, connected once per server process; a failed connection is retried on the next refresh."""
    opened = _cached_stores()
    if opened.mongo_error or opened.redis_error:
        _cached_stores.clear()
    return opened


def drop_stores(opened: DashboardStores) -> None:
    """Forget and close stores that stopped answering: the next :func:`stores` connects again."""
    _cached_stores.clear()
    opened.close()


def banner(opened: DashboardStores) -> None:
    """Show one clear line for each store that could not be reached."""
    if opened.mongo_error:
        st.error(opened.mongo_error, icon="🚫")
    if opened.redis_error:
        st.error(opened.redis_error, icon="🚫")


def rollup_hint(db: Database) -> None:
    """Say so when the results predate the rollups that the charts read (two metadata counts, no scan)."""
    if counts_missing(db):
        st.warning(
            "This database holds results from before the per-quarter-hour counts that these charts read, so they "
            "show nothing yet: the next `voxflow analyze` or `voxflow drain` rebuilds the counts once from the stored results.",
            icon="⏳",
        )


@dataclass(frozen=True)
class Page:
    """What a page's body is given on each refresh: the settings and the opened stores."""

    settings: Settings
    stores: DashboardStores

    @property
    def tz(self) -> str:
        """The IANA time zone times are shown in."""
        return self.settings.dashboard_timezone


def show(title: str, body: Callable[[Page], None], *, needs: Literal["mongo", "redis"] | None = None, unavailable: str = "") -> None:
    """Title the page and run ``body`` in a fragment that Streamlit re-runs every ``dashboard_refresh_s``.

    Each run opens the stores and shows a banner for any that is unreachable; when the store the page
    ``needs`` is one of them, the ``unavailable`` line is shown instead of the body. A store that stops
    answering while the body runs is dropped and the page drawn once more on freshly opened stores, so it
    shows the same banner and whatever the other store still gives.
    """
    st.title(title)

    def draw(opened: DashboardStores) -> None:
        banner(opened)
        if (needs == "mongo" and opened.db is None) or (needs == "redis" and opened.redis is None):
            st.info(unavailable)
            return
        body(Page(settings(), opened))

    def refresh() -> None:
        shown = st.empty()
        for _ in range(2):
            opened = stores()
            try:
                with shown.container():
                    draw(opened)
                return
            except STORE_ERRORS as exc:
                drop_stores(opened)
                shown.empty()
                lost = opened.lost(exc)
        st.error(lost, icon="🚫")

    st.fragment(refresh, run_every=settings().dashboard_refresh_s, key=f"page-{title.lower()}")()


@st.cache_resource(ttl=5, show_spinner=False)
def cluster() -> ClusterSnapshot | None:
    """The configured Dask scheduler's workers (read at most every 5 s), None when none is configured or reachable."""
    address = get_settings().dask_address
    return read_scheduler(address) if address else None


def local_times(times: pd.Series, tz: str) -> pd.Series:
    """UTC instants as naive wall-clock times in ``tz`` (charts then show them as they are, whatever the browser's zone)."""
    return pd.to_datetime(times, utc=True).dt.tz_convert(tz).dt.tz_localize(None)


def local_text(when: object, tz: str) -> str:
    """One instant as ``YYYY-MM-DD HH:MM:SS`` in ``tz``, or "—" when missing."""
    if when is None or pd.isna(when):
        return "—"
    return pd.Timestamp(when).tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")
