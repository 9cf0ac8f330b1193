"""Point Prefect at the configured API, or at the embedded server voxflow manages."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

from voxflow import services
from voxflow.settings import Settings


@contextmanager
def prefect_api(settings: Settings) -> Iterator[str]:
    """Run the enclosed flows against the Prefect API from settings (embedded when unset).

    Yields
    ------
    str
        The API URL in use.
    """
    url = services.prefect_api_url(settings)
    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        yield url
