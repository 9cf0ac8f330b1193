"""The intake queue: a Redis Stream of files to analyse, read through the consumer group ``analyzers``.

An entry is acknowledged and deleted (one Lua script) only after its result or quarantine record is
persisted, so the stream length is the number of files not yet done. Entries a dead consumer left
pending are claimed again with XAUTOCLAIM once idle for ``claim_idle_s``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Sequence

import redis

from store.cache import STREAM_PAGE, redis_errors_as_service_error, stream_entries
from store.latency import LatencyLog, LatencySample

QUEUE_STREAM = "voxflow:queue"
QUEUE_GROUP = "analyzers"
_BLOCK_SLICE_MS = 1000


@dataclass(frozen=True)
class QueueItem:
    """A file to enqueue; ``sha256`` is optional (the drain hashes the file again anyway)."""

    path: str
    sha256: str | None = None
    subject_id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class QueueEntry:
    """One delivered stream entry: its id, the file and when it was enqueued (epoch seconds).

    ``path`` is empty for an entry written without one (by another producer): it names no file.
    """

    entry_id: str
    path: str
    enqueued_at: float
    sha256: str | None = None
    subject_id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class ConsumerState:
    """One consumer of the group: entries delivered to it and not yet acknowledged, and its idle time."""

    name: str
    pending: int
    idle_s: float


@dataclass(frozen=True)
class QueueStatus:
    """The queue now: ``depth`` files not yet done, ``pending`` of them delivered, the oldest one's age."""

    depth: int
    pending: int
    oldest_pending_age_s: float | None
    consumers: list[ConsumerState] = field(default_factory=list)


def entry_time_s(entry_id: str) -> float:
    """Epoch seconds at which Redis created a stream entry (the milliseconds part of its id).

    Examples
    --------
    >>> entry_time_s("1700000000123-0")
    1700000000.123
    """
    return int(entry_id.split("-", 1)[0]) / 1000


def removable_consumers(consumers: Sequence[ConsumerState], *, idle_s: float, ended: Collection[str] = ()) -> list[str]:
    """Consumers that hold nothing and were idle at least ``idle_s``, or whose drain is over (``ended``: dead
    ones, the caller's own): safe to delete.

    A consumer with pending entries is kept until those are claimed, or its entries would never be
    delivered again.
    """
    return [c.name for c in consumers if c.pending == 0 and (c.idle_s >= idle_s or c.name in ended)]


def _enqueued_at(entry_id: str, fields: dict[str, str]) -> float:
    try:
        enqueued_at = float(fields["enqueued_at"])
    except (KeyError, ValueError):  # another producer's entry: Redis's own time of the entry
        return entry_time_s(entry_id)
    return enqueued_at if math.isfinite(enqueued_at) else entry_time_s(entry_id)


def _entry(entry_id: str, fields: dict[str, str]) -> QueueEntry:
    # Never raises on an entry's fields: an entry that cannot be read would be delivered again to every drain.
    return QueueEntry(
        entry_id=entry_id,
        path=fields.get("path", ""),
        enqueued_at=_enqueued_at(entry_id, fields),
        sha256=fields.get("sha256") or None,
        subject_id=fields.get("subject_id") or None,
        label=fields.get("label") or None,
    )


# KEYS: the queue stream [, the latency stream]; ARGV: group, latency maxlen, then per entry: id, path, latency_s, outcome.
# Redis runs a script to its end once sent, whatever becomes of the client, but keeps what it wrote
# before a runtime error: the latency key is checked before the first write.
_ACK_AND_RECORD = """
if KEYS[2] then
    local kind = redis.call('TYPE', KEYS[2])['ok']
    if kind ~= 'stream' and kind ~= 'none' then
        return redis.error_reply('WRONGTYPE latency log ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a stream')
    end
end
local acked = {}
for i = 3, #ARGV, 4 do
    local id = ARGV[i]
    if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
        table.insert(acked, id)
        if KEYS[2] and ARGV[i + 1] ~= '' then
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                'entry_id', id, 'path', ARGV[i + 1], 'latency_s', ARGV[i + 2], 'outcome', ARGV[i + 3])
        end
    end
    redis.call('XDEL', KEYS[1], id)
end
return acked
"""


class FileQueue:
    """Redis Stream ``stream`` with consumer group ``group`` (created with MKSTREAM on first use)."""

    def __init__(self, client: redis.Redis, *, stream: str = QUEUE_STREAM, group: str = QUEUE_GROUP) -> None:
        self._client = client
        self.stream = stream
        self.group = group

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists; new groups start at the first entry."""
        with redis_errors_as_service_error():
            try:
                self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def enqueue(self, items: Sequence[QueueItem], *, now: float | None = None) -> list[str]:
        """Append files to the stream in one pipelined round trip; returns the new entry ids."""
        if not items:
            return []
        self.ensure_group()
        enqueued_at = repr(time.time() if now is None else now)
        with redis_errors_as_service_error():
            pipe = self._client.pipeline(transaction=False)
            for item in items:
                fields = {"path": item.path, "enqueued_at": enqueued_at}
                fields.update({k: v for k, v in (("sha256", item.sha256), ("subject_id", item.subject_id), ("label", item.label)) if v})
                pipe.xadd(self.stream, fields)
            return list(pipe.execute())

    def read(
        self, consumer: str, *, count: int, claim_idle_s: float, block_s: float = 0.0, stop_waiting: Callable[[], bool] | None = None
    ) -> list[QueueEntry]:
        """Up to ``count`` entries for ``consumer``: first those other consumers left idle, then new ones.

        Parameters
        ----------
        consumer : str
            This reader's name in the group (unique per process).
        count : int
            Most entries to return.
        claim_idle_s : float
            Pending entries idle at least this long are claimed (XAUTOCLAIM) from their consumer.
        block_s : float
            When nothing is waiting, wait this long for new entries (0: return at once).
        stop_waiting : callable, optional
            Asked between slices of that wait (one a second): True ends it, with no entries.
        """
        self.ensure_group()
        with redis_errors_as_service_error():
            _, claimed, *_ = self._client.xautoclaim(
                self.stream, self.group, consumer, min_idle_time=int(claim_idle_s * 1000), start_id="0-0", count=count
            )
            entries = [_entry(entry_id, fields) for entry_id, fields in claimed if fields]
            deadline = time.monotonic() + (block_s if not entries else 0.0)
            while len(entries) < count:
                wait_ms = int((deadline - time.monotonic()) * 1000)
                # Block in short slices: a client socket timeout must not end a long wait.
                block_ms = min(wait_ms, _BLOCK_SLICE_MS) if wait_ms > 0 else None
                replies = self._client.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count - len(entries), block=block_ms)
                for _, delivered in replies or ():
                    entries.extend(_entry(entry_id, fields) for entry_id, fields in delivered)
                if entries or block_ms is None or (stop_waiting is not None and stop_waiting()):
                    break
        return entries

    def ack(self, entry_ids: Sequence[str], *, log: LatencyLog | None = None, samples: Sequence[LatencySample] = ()) -> list[str]:
        """Acknowledge and delete entries atomically; returns the ids that were still pending (acked now).

        An id acknowledged before (by this or another consumer) is not returned again. With ``log``,
        every entry acknowledged now also gets its sample (from ``samples``, by entry id) appended to
        the log in the same step (one Lua script): a consumer killed mid-way leaves both or neither,
        so the log holds exactly one sample per acknowledgement.
        """
        if not entry_ids:
            return []
        by_id = {sample.entry_id: sample for sample in samples}
        args: list[str | int | float] = [self.group, log.maxlen if log else 0]
        for entry_id in entry_ids:
            sample = by_id.get(entry_id)
            args += [entry_id, *((sample.path, round(sample.latency_s, 4), sample.outcome) if sample else ("", "", ""))]
        keys = [self.stream, log.stream] if log else [self.stream]
        with redis_errors_as_service_error():
            return list(self._client.eval(_ACK_AND_RECORD, len(keys), *keys, *args))

    def status(self, *, now: float | None = None) -> QueueStatus:
        """Depth, pending count, age of the oldest file not yet done, and each consumer's pending entries."""
        now = time.time() if now is None else now
        self.ensure_group()
        with redis_errors_as_service_error():
            depth = self._client.xlen(self.stream)
            oldest = self._client.xrange(self.stream, count=1)
            pending = int(self._client.xpending(self.stream, self.group)["pending"])
            consumers = [
                ConsumerState(c["name"], int(c["pending"]), int(c["idle"]) / 1000)
                for c in self._client.xinfo_consumers(self.stream, self.group)
            ]
        age = max(0.0, now - _entry(*oldest[0]).enqueued_at) if oldest else None
        return QueueStatus(depth=depth, pending=pending, oldest_pending_age_s=age, consumers=consumers)

    def release(self, names: Sequence[str], *, idle_s: float) -> int:
        """Make the entries pending with consumers ``names`` (known to be dead) claimable now: their idle
        time is set to ``idle_s`` (the readers' claim time), so the next :meth:`read` claims them.
        Returns how many entries were released."""
        released = 0
        with redis_errors_as_service_error():
            for name in names:
                start = "-"
                while pending := self._client.xpending_range(self.stream, self.group, min=start, max="+", count=1000, consumername=name):
                    ids = [entry["message_id"] for entry in pending]
                    self._client.xclaim(self.stream, self.group, name, min_idle_time=0, message_ids=ids, idle=int(idle_s * 1000), justid=True)
                    released += len(ids)
                    start = f"({ids[-1]}"  # after the last: the entries stay pending, with the same consumer
        return released

    def forget(
        self, *, hashes: Collection[str], paths: Collection[str], subjects: Collection[str], folders: Collection[str] = (), dry_run: bool = False
    ) -> set[tuple[str | None, ...]]:
        """Acknowledge and delete the entries naming one of these contents (``sha256``), paths, subjects or files under
        ``folders`` (each ending in a slash): waiting, or left pending by a drain that died. Returns the (``sha256``, ``path``, ``subject_id``)
        of each (None for a field it lacks). Hold the drain lock: a drain reading meanwhile could analyse one."""
        found: dict[str, tuple[str | None, ...]] = {}
        under = tuple(folders)
        with redis_errors_as_service_error():
            for entry_id, fields in stream_entries(self._client, self.stream):
                path = fields.get("path") or ""
                if fields.get("sha256") in hashes or path in paths or fields.get("subject_id") in subjects or (under and path.startswith(under)):
                    found[entry_id] = (fields.get("sha256"), path or None, fields.get("subject_id"))
            if found and not dry_run:
                self.ensure_group()
                ids = list(found)
                for first in range(0, len(ids), STREAM_PAGE):
                    self._client.xack(self.stream, self.group, *ids[first : first + STREAM_PAGE])
                    self._client.xdel(self.stream, *ids[first : first + STREAM_PAGE])
        return set(found.values())

    def remove_consumers(self, names: Sequence[str]) -> None:
        """Delete consumers from the group (only those :func:`removable_consumers` picks hold nothing)."""
        with redis_errors_as_service_error():
            for name in names:
                self._client.xgroup_delconsumer(self.stream, self.group, name)
