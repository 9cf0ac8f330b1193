"""Times read back from MongoDB as UTC datetimes, whichever way the server stored them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable


def utc_times(doc: dict[str, Any] | None, names: Iterable[str]) -> dict[str, Any] | None:
    """``doc`` with its fields ``names`` as UTC datetimes: nx-27017 stores a datetime written by ``$set`` as its text,
    and BSON times come back naive.

    Examples
    --------
    >>> utc_times({"promoted_at": "2026-12-06 17:01:25.045000"}, ["promoted_at"])["promoted_at"].isoformat()
    '2026-12-06T17:01:25.045000+00:00'
    """
    if doc is None:
        return None
    for name in names:
        value = doc.get(name)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # BSON times are UTC
        if value is not None:
            doc[name] = value
    return doc
