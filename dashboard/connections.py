"""The dashboard's connections: MongoDB and Redis opened for reading, with failures as one redacted line."""

from __future__ import annotations

from dataclasses import dataclass

import pymongo
import pymongo.errors
import redis
from pymongo.database import Database

from store.cache import connect_redis
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


def _scrub(message: str, secret: str) -> str:
    """Drop the connection string (and any password in it) from an error message."""
    return message.replace(secret, services.redact(secret)) if secret else message


def open_mongo(settings: Settings) -> tuple[Database | None, str | None]:
    """Connect to ``dashboard_mongo_uri`` (else the voxflow MongoDB) and ping it; (database, None) or (None, reason)."""
    uri = ""
    try:
        secret = settings.dashboard_mongo_uri or settings.mongo_uri
        uri = secret.get_secret_value() if secret is not None else services.mongo_uri(settings)
        # Reads may come from a secondary: the dashboard never needs to see its own writes (it makes none).
        client: pymongo.MongoClient = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=_TIMEOUT_MS, connectTimeoutMS=_TIMEOUT_MS, tz_aware=True,
            appname="voxflow-dashboard", readPreference="secondaryPreferred",
        )
        client.admin.command("ping")
    except (pymongo.errors.PyMongoError, VoxflowError, ValueError) as exc:
        where = services.redact(uri) if uri else "the embedded server"
        reason = str(exc).split(", Timeout:")[0]
        return None, _scrub(f"MongoDB unreachable at {where}: {reason}", uri)
    return client[settings.mongo_db], None


def open_redis(settings: Settings) -> tuple[redis.Redis | None, str | None]:
    """Connect to ``dashboard_redis_url`` (else the voxflow Redis) and ping it; (client, None) or (None, reason)."""
    url = ""
    try:
        secret = settings.dashboard_redis_url or settings.redis_url
        url = secret.get_secret_value() if secret is not None else services.redis_url(settings)
        client = connect_redis(url)
        client.ping()
    except (redis.RedisError, VoxflowError, ValueError) as exc:
        where = services.redact(url) if url else "the embedded server"
        return None, _scrub(f"Redis unreachable at {where}: {exc}", url)
    return client, None


def open_stores(settings: Settings) -> DashboardStores:
    """Open both stores; neither failure raises."""
    db, mongo_error = open_mongo(settings)
    client, redis_error = open_redis(settings)
    return DashboardStores(db, client, mongo_error, redis_error)
