"""The dashboard's connections: MongoDB and Redis opened for reading, with failures as one redacted line."""

from __future__ import annotations

from dataclasses import dataclass, field

import pymongo
import pymongo.errors
import redis
from pymongo.database import Database

from store.cache import connect_redis
from store.mongo import failure_reason, login_not_understood, refuses_user, server_message
from voxflow import services
from voxflow.errors import VoxflowError
from voxflow.settings import Settings

_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class DashboardStores:
    """What the pages read from; a store that could not be reached is None with a reason beside it."""

    db: Database | None
    redis: redis.Redis | None
    mongo_error: str | None = None
    redis_error: str | None = None
    mongo_uri: str = field(default="", repr=False)  # for redacting errors raised later
    redis_url: str = field(default="", repr=False)

    def lost(self, exc: redis.RedisError | pymongo.errors.PyMongoError) -> str:
        """The banner line for a store that failed after it was opened (redacted like at start-up): unreachable, or
        refusing the user or a request."""
        if isinstance(exc, redis.RedisError):
            return _redis_failed(self.redis_url, exc)
        return _mongo_failed(self.mongo_uri, exc)

    def close(self) -> None:
        """Close both clients (their pools and pymongo's monitor threads)."""
        if self.db is not None:
            self.db.client.close()
        if self.redis is not None:
            self.redis.close()


def _scrub(message: str, secret: str) -> str:
    """Drop the connection string (and any password in it) from an error message."""
    return message.replace(secret, services.redact(secret)) if secret else message


def _where(address: str) -> str:
    return services.redact(address) if address else "the embedded server"


def _mongo_failed(uri: str, exc: Exception) -> str:
    where = _where(uri)
    if isinstance(exc, pymongo.errors.OperationFailure):  # the server answered, and said no
        if refuses_user(exc):
            return _scrub(f"MongoDB at {where} refused the configured user: {server_message(exc)}; check the user and password of the MongoDB URI", uri)
        return _scrub(f"MongoDB at {where} refused a query: {server_message(exc)}", uri)
    if isinstance(exc, (pymongo.errors.ConfigurationError, ValueError)):
        return _scrub(f"MongoDB settings not usable ({where}): {exc}", uri)
    return _scrub(f"MongoDB unreachable at {where}: {failure_reason(exc)}", uri)


def _redis_failed(url: str, exc: Exception) -> str:
    where = _where(url)
    if isinstance(exc, redis.AuthenticationError):
        return _scrub(f"Redis at {where} refused the configured user: {exc}; check the user and password of the Redis URL", url)
    if isinstance(exc, redis.ResponseError):
        return _scrub(f"Redis at {where} refused a command: {exc}", url)
    if isinstance(exc, ValueError):
        return _scrub(f"Redis settings not usable ({where}): {exc}", url)
    return _scrub(f"Redis unreachable at {where}: {exc}", url)


def open_mongo(settings: Settings) -> tuple[Database | None, str | None, str]:
    """Connect to ``dashboard_mongo_uri`` (else the voxflow MongoDB) and ping it: (database, None, uri) or (None, reason, uri)."""
    uri = ""
    client: pymongo.MongoClient | None = None
    try:
        secret = settings.dashboard_mongo_uri or settings.mongo_uri
        uri = secret.get_secret_value() if secret is not None else services.mongo_uri(settings)
        # Reads may come from a secondary: the dashboard never needs to see its own writes (it makes none).
        client = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=_TIMEOUT_MS, connectTimeoutMS=_TIMEOUT_MS, tz_aware=True,
            appname="voxflow-dashboard", readPreference="secondaryPreferred",
        )
        client.admin.command("ping")
    except Exception as exc:
        if client is not None:
            client.close()  # else its monitor thread keeps polling the dead server
        if isinstance(exc, (pymongo.errors.PyMongoError, VoxflowError, ValueError)):
            return None, _mongo_failed(uri, exc), uri
        if (refused := login_not_understood(exc, f"database {settings.mongo_db}")) is None:
            raise
        return None, _scrub(refused.reason, uri), uri
    return client[settings.mongo_db], None, uri


def open_redis(settings: Settings) -> tuple[redis.Redis | None, str | None, str]:
    """Connect to ``dashboard_redis_url`` (else the voxflow Redis) and ping it: (client, None, url) or (None, reason, url)."""
    url = ""
    try:
        secret = settings.dashboard_redis_url or settings.redis_url
        url = secret.get_secret_value() if secret is not None else services.redis_url(settings)
        client = connect_redis(url)
        client.ping()
    except (redis.RedisError, VoxflowError, ValueError) as exc:
        return None, _redis_failed(url, exc), url
    return client, None, url


def open_stores(settings: Settings) -> DashboardStores:
    """Open both stores; neither failure raises."""
    db, mongo_error, uri = open_mongo(settings)
    client, redis_error, url = open_redis(settings)
    return DashboardStores(db, client, mongo_error, redis_error, uri, url)
