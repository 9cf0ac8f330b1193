"""Point Prefect at the configured API, or at the embedded server voxflow manages."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

from voxflow import services
from voxflow.settings import Settings


@contextmanager
def prefect_api(settings: Settings) -> Iterator[str]:
    """Run the enclosed flows against the Prefect API from settings (embedded when unset).

    Flow runs on the embedded server send no heartbeats: they feed zombie-run automations, which
    only an operator's server has, and stopping the heartbeat thread held each run's end up to a
    second (it sleeps in 1 s steps). On a configured server Prefect's own setting applies.

    Yields
    ------
    str
        The API URL in use.
    """
    url = services.prefect_api_url(settings)
    updates = {PREFECT_API_URL: url, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if settings.prefect_api_url is None:
        updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    with temporary_settings(updates=updates):
        yield url
