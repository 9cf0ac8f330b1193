"""Redis: the hot prediction cache and bounded live-metrics streams."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence, TypeVar

import redis

from voxflow.errors import ServiceError

T = TypeVar("T")

log = logging.getLogger(__name__)
_KEYS_PER_CALL = 1000
STREAM_PAGE = 1000  # stream entries per XRANGE, XACK or XDEL


def connect_redis(url: str) -> redis.Redis:
    """Open a Redis client for a ``redis://``, ``rediss://`` or ``unix://`` URL, decoding replies to str."""
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30)


@contextmanager
def redis_errors_as_service_error(context: str = "") -> Iterator[None]:
    """Turn Redis connection errors, timeouts and refused commands (a key of another type, a database the server
    does not have, a failed script) inside the block into a ServiceError (``context``: what was being done)."""
    where = f" ({context})" if context else ""
    try:
        yield
    except redis.AuthenticationError as exc:  # a ConnectionError to redis-py, and as unusable: but no outage
        raise RedisUnreachable(f"Redis refused the configured user or password{where}: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnreachable(f"Redis unreachable{where}: {exc}") from exc
    except redis.ResponseError as exc:
        raise ServiceError(f"Redis refused a command{where}: {exc}") from exc


def stream_entries(client: redis.Redis, stream: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Every entry of ``stream`` (id, fields), oldest first, read :data:`STREAM_PAGE` at a time."""
    start = "-"
    while page := client.xrange(stream, min=start, max="+", count=STREAM_PAGE):
        yield from page
        start = f"({page[-1][0]}"  # after the last one read


class RedisUnreachable(ServiceError):
    """Redis did not answer: no connection, a connection lost or a timeout (not a command it refused)."""


class RedisOutages:
    """Best effort for the Redis calls a run can do without (its prediction cache and live metrics): while Redis
    does not answer, each gives its fallback instead of failing the run. The first call that finds Redis gone logs
    one warning, the first that finds it back one line; a refused command still fails.
    """

    def __init__(self) -> None:
        self.down = False

    def tolerate(self, call: Callable[[], T], fallback: T) -> T:
        """``call()``, or ``fallback`` when Redis does not answer it."""
        try:
            with redis_errors_as_service_error():
                result = call()
        except RedisUnreachable as exc:
            if not self.down:
                log.warning("Redis unreachable: the run goes on without its prediction cache and live metrics, MongoDB keeps every result (%s)", exc.__cause__)
            self.down = True
            return fallback
        if self.down:
            log.info("Redis answers again: the prediction cache and live metrics are kept again")
        self.down = False
        return result


def _call(call: Callable[[], T], fallback: T, outages: RedisOutages | None) -> T:
    """``call()`` with Redis errors as a ServiceError, or, given ``outages``, with its best effort."""
    if outages is not None:
        return outages.tolerate(call, fallback)
    with redis_errors_as_service_error():
        return call()


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class PredictionCache:
    """Recent predictions of one MongoDB database by (audio_sha256, model_version), as JSON that expires after ``ttl_s``.

    Keys are ``voxflow:cache:pred:{database}:{audio_sha256}:{model_version}``: a prediction cached for
    one database never stands in for a document missing from another. Given ``outages``, reads and writes are
    best effort (:class:`RedisOutages`): a read finds nothing while Redis does not answer.
    """

    def __init__(self, client: redis.Redis, *, ttl_s: int, database: str, outages: RedisOutages | None = None) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._prefix = f"voxflow:cache:pred:{database}:"
        self._outages = outages

    def _key(self, audio_sha256: str, model_version: str) -> str:
        return f"{self._prefix}{audio_sha256}:{model_version}"

    def get_many(self, hashes: Sequence[str], model_version: str) -> dict[str, dict[str, Any]]:
        """Return the cached prediction of each hash that has one (one MGET)."""
        if not hashes:
            return {}
        keys = [self._key(h, model_version) for h in hashes]
        values = _call(lambda: self._client.mget(keys), [None] * len(keys), self._outages)
        return {h: json.loads(value) for h, value in zip(hashes, values) if value is not None}

    def put_many(self, docs: Sequence[Mapping[str, Any]]) -> None:
        """Cache predictions (each with ``audio_sha256`` and ``model_version``) in one pipelined round trip."""
        if not docs:
            return
        pipe = self._client.pipeline(transaction=False)
        for doc in docs:
            pipe.set(self._key(doc["audio_sha256"], doc["model_version"]), json.dumps(doc), ex=self._ttl_s)
        _call(pipe.execute, None, self._outages)

    def forget(self, hashes: Collection[str], model_versions: Collection[str], *, dry_run: bool = False) -> int:
        """Delete the cached predictions of these contents by these models; how many there were."""
        keys = [self._key(sha, version) for sha in sorted(set(hashes)) for version in sorted(set(model_versions))]
        removed = 0
        with redis_errors_as_service_error():
            for start in range(0, len(keys), _KEYS_PER_CALL):
                batch = keys[start : start + _KEYS_PER_CALL]
                removed += self._client.exists(*batch) if dry_run else self._client.unlink(*batch)
        return removed

    def clear(self) -> int:
        """Delete every prediction cached for this database (after its documents were replaced); returns how many.

        Databases whose name extends this one's after a colon lose theirs too: harmless for a cache.
        """
        with redis_errors_as_service_error():
            pipe = self._client.pipeline(transaction=False)
            for key in self._client.scan_iter(match=f"{_glob_escape(self._prefix)}*", count=1000):
                pipe.unlink(key)
            return sum(pipe.execute())


class LiveMetrics:
    """Throughput/latency/backlog samples in Redis streams ``voxflow:metrics:{stream}``, capped near ``maxlen``.

    Given ``outages``, samples are recorded with its best effort (:class:`RedisOutages`).
    """

    def __init__(self, client: redis.Redis, *, maxlen: int, outages: RedisOutages | None = None) -> None:
        self._client = client
        self._maxlen = maxlen
        self._outages = outages

    def record(self, stream: str, fields: Mapping[str, float | int | str]) -> None:
        """Append one sample (XADD with approximate MAXLEN trimming)."""
        _call(lambda: self._client.xadd(f"voxflow:metrics:{stream}", dict(fields), maxlen=self._maxlen, approximate=True), None, self._outages)

    def recent(self, stream: str, *, count: int = 100) -> list[dict[str, str]]:
        """Return the last ``count`` samples, newest last.

        Each sample has its fields (as strings, as Redis stores them) and ``id``, the stream entry id
        ``<milliseconds since epoch>-<sequence>``.
        """
        with redis_errors_as_service_error():
            entries = self._client.xrevrange(f"voxflow:metrics:{stream}", count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in reversed(entries)]
