"""Auto-refresh, served for real: every page asks the browser to re-run it every VOXFLOW_DASHBOARD_REFRESH_S, and that re-run shows new data."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from streamlit.proto.ClientState_pb2 import ClientState

from store.mongo import ResultStore, connect_mongo
from tests.dashboard.conftest import PAGES
from tests.dashboard.served import BrowserSession, serve_dashboard
from voxflow import services
from voxflow.settings import Settings

pytestmark = pytest.mark.slow

REFRESH_S = 7


def _zone_at_noon(now: datetime) -> str:
    """A fixed-offset IANA zone whose clock reads 12:xx at ``now``: its midnights are 11 hours or more away either side.

    The served dashboard's "today" then cannot turn while the test runs, between storing results and
    showing them, whenever it runs (Etc/GMT-9 is UTC+9: POSIX signs).
    """
    hours = 12 - now.hour  # -11 to +12, all of them zones of the IANA database
    return f"Etc/GMT{-hours:+d}" if hours else "Etc/UTC"


def test_pages_refresh_on_their_timer_with_fresh_numbers(test_settings: Settings) -> None:
    zone = _zone_at_noon(datetime.now(timezone.utc))
    env = {
        "VOXFLOW_HOME": str(test_settings.home), "VOXFLOW_MONGO_URI": services.mongo_uri(test_settings),
        "VOXFLOW_REDIS_URL": services.redis_url(test_settings), "VOXFLOW_MONGO_DB": f"refresh_{uuid.uuid4().hex[:10]}",
        "VOXFLOW_DASHBOARD_REFRESH_S": str(REFRESH_S), "VOXFLOW_DASHBOARD_TIMEZONE": zone,
    }
    client = connect_mongo(env["VOXFLOW_MONGO_URI"])
    results = ResultStore(client[env["VOXFLOW_MONGO_DB"]])

    async def browse(url: str) -> None:
        session = await BrowserSession.open(url)
        try:
            first = await session.rerun(ClientState())
            assert not first.exceptions, first.exceptions
            assert (first.metrics["Predictions stored"], first.metrics["Scored today"], first.metrics["Quarantined today"]) == ("0", "0", "0")
            [(interval, fragment)] = first.auto_reruns
            assert interval == REFRESH_S
            assert set(first.pages) == {page.capitalize() for page in PAGES}

            # Results arrive; the browser's timer then re-runs only the page's fragment, as Streamlit's frontend does.
            now = datetime.now(timezone.utc)
            results.ensure_indexes()
            results.insert_predictions([
                {"audio_sha256": f"r{i}", "model_version": "m1", "run_id": "r", "score": score, "threshold": 0.5, "created_at": now}
                for i, score in enumerate([0.2, 0.6, 0.9])
            ])
            results.insert_quarantine([{"run_id": "r", "path": "/bad.wav", "stage": "decode", "reason": "empty file", "created_at": now}])
            tick = ClientState(fragment_id=fragment, is_auto_rerun=True, page_script_hash=first.pages["Overview"])
            refreshed = await session.rerun(tick)
            assert not refreshed.exceptions, refreshed.exceptions
            assert (refreshed.metrics["Predictions stored"], refreshed.metrics["Scored today"]) == ("3", "3")
            assert (refreshed.metrics["Screen-positive today"], refreshed.metrics["Quarantined today"]) == ("2 (66.7%)", "1")
            # Only the fragment ran: its headings came again, the page title (outside it) did not.
            assert "Overview" in first.headings and "Overview" not in refreshed.headings and "Scaling triggers" in refreshed.headings

            for name, page_hash in first.pages.items():  # every page registers the same timer
                shown = await session.rerun(ClientState(page_script_hash=page_hash))
                assert not shown.exceptions, (name, shown.exceptions)
                assert [interval for interval, _ in shown.auto_reruns] == [REFRESH_S], name
        finally:
            session.close()

    try:
        with serve_dashboard(env) as served:
            asyncio.run(browse(served.url))
    finally:
        client.drop_database(env["VOXFLOW_MONGO_DB"])
        client.close()


@pytest.mark.parametrize("hour", range(24))
def test_the_zone_chosen_reads_noon(hour: int) -> None:
    now = datetime(2026, 11, 27, hour, 59, 59, tzinfo=timezone.utc)
    assert now.astimezone(ZoneInfo(_zone_at_noon(now))).strftime("%H:%M:%S") == "12:59:59"
