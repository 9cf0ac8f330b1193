"""Point Prefect at the configured API, or at the embedded server voxflow manages."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import httpx
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

from voxflow import services
from voxflow.errors import PrefectUnreachable
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

    Raises
    ------
    PrefectUnreachable
        When the API stopped answering (Prefect's client gave up: no connection, or a server error) in the block.
    """
    url = services.prefect_api_url(settings)
    updates = {PREFECT_API_URL: url, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if settings.prefect_api_url is None:
        updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    with temporary_settings(updates=updates):
        try:
            yield url
        except (httpx.TransportError, httpx.HTTPStatusError, RuntimeError) as exc:  # PrefectHTTPStatusError among them
            if (reason := unreachable_reason(exc)) is None:
                raise
            raise PrefectUnreachable(f"Prefect API unreachable ({services.redact(url)}): {reason}") from exc


def unreachable_reason(exc: BaseException) -> str | None:
    """What says that the Prefect API is unreachable in ``exc``, one line; None for an error of another kind.

    A server error (5xx) counts: the server is up but cannot serve (its database gone, a proxy without it). So
    does the RuntimeError with which Prefect's client ends a flow whose first call, its server version check,
    failed ("Failed to reach API at ..."), by the error it met: there, HTTP 404 says that no Prefect API
    answers at that URL.

    Examples
    --------
    >>> unreachable_reason(httpx.ConnectError("[Errno 111] Connection refused"))
    'ConnectError: [Errno 111] Connection refused'
    >>> unreachable_reason(ValueError("bad")) is None
    True
    """
    if isinstance(exc, RuntimeError) and isinstance(exc.__cause__, httpx.HTTPError) and str(exc).startswith("Failed to reach API"):
        cause = exc.__cause__
        if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 404:
            return "HTTP 404 Not Found: no Prefect API at this URL (it ends in /api)"
        return unreachable_reason(cause) or f"{type(cause).__name__}: {cause}"
    if isinstance(exc, httpx.TransportError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.is_server_error:
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}"
    return None
