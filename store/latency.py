"""Per-file enqueue-to-persisted latency: samples in ``voxflow:metrics:latency`` and their percentiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import redis

from store.cache import STREAM_PAGE, redis_errors_as_service_error, stream_entries
from voxflow.scaling import percentile

LATENCY_STREAM = "voxflow:metrics:latency"


@dataclass(frozen=True)
class LatencySample:
    """One settled queue entry: how long it waited from enqueue until its outcome was persisted."""

    entry_id: str
    path: str
    latency_s: float
    outcome: str


def latency_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """``count``, ``p50_s``, ``p95_s`` and ``max_s`` of latencies in seconds (None when there are none).

    Percentiles interpolate linearly between closest ranks (:func:`voxflow.scaling.percentile`).

    Examples
    --------
    >>> latency_summary([1.0, 2.0, 3.0, 4.0])
    {'count': 4, 'p50_s': 2.5, 'p95_s': 3.85, 'max_s': 4.0}
    """
    if not values:
        return {"count": 0, "p50_s": None, "p95_s": None, "max_s": None}
    values = list(values)
    return {
        "count": len(values),
        "p50_s": round(percentile(values, 50), 3),
        "p95_s": round(percentile(values, 95), 3),
        "max_s": round(max(values), 3),
    }


class LatencyLog:
    """Latency samples in a Redis stream capped near ``maxlen`` (fields ``latency_s``, ``outcome``, ``path``, ``entry_id``).

    Samples are appended by :meth:`store.queue.FileQueue.ack`, in the same atomic step as the acknowledgement.
    """

    def __init__(self, client: redis.Redis, *, maxlen: int, stream: str = LATENCY_STREAM) -> None:
        self._client = client
        self.maxlen = maxlen
        self.stream = stream

    def since(self, start_ms: int) -> list[LatencySample]:
        """Every sample recorded at or after ``start_ms`` (epoch milliseconds), oldest first."""
        with redis_errors_as_service_error():
            entries = self._client.xrange(self.stream, min=str(start_ms))
        return [LatencySample(f["entry_id"], f["path"], float(f["latency_s"]), f["outcome"]) for _, f in entries]

    def forget(self, paths: Collection[str], *, dry_run: bool = False) -> int:
        """Delete the samples naming one of ``paths`` (a forgotten recording's); how many there were."""
        with redis_errors_as_service_error():
            found = [entry_id for entry_id, fields in stream_entries(self._client, self.stream) if fields.get("path") in paths]
            if found and not dry_run:
                for first in range(0, len(found), STREAM_PAGE):
                    self._client.xdel(self.stream, *found[first : first + STREAM_PAGE])
        return len(found)
