"""The intake queue and latency metrics on a real Redis (a stream of their own per test)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Iterator

import pytest
import redis

from store.latency import LatencyLog, LatencySample, latency_summary
from store.queue import ConsumerState, FileQueue, QueueItem, entry_time_s, removable_consumers
from voxflow.errors import ServiceError


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[FileQueue]:
    stream = f"vxtest:queue:{uuid.uuid4().hex[:8]}"
    yield FileQueue(redis_client, stream=stream)
    redis_client.delete(stream)


def test_entries_are_delivered_once_and_acked_entries_leave_the_stream(queue: FileQueue) -> None:
    ids = queue.enqueue([QueueItem("/a.wav"), QueueItem("/b.wav", sha256="ab" * 32, subject_id="s1", label="healthy")], now=1000.0)
    assert queue.status(now=1010.0).depth == 2 and queue.status(now=1010.0).oldest_pending_age_s == pytest.approx(10.0)

    first = queue.read("c1", count=10, claim_idle_s=60)
    assert [e.entry_id for e in first] == ids and first[1].sha256 == "ab" * 32 and first[1].label == "healthy"
    assert first[0].enqueued_at == 1000.0 and first[0].sha256 is None
    assert queue.read("c2", count=10, claim_idle_s=60) == []  # delivered to c1, not idle long enough

    status = queue.status()
    assert (status.depth, status.pending) == (2, 2)
    assert {c.name: c.pending for c in status.consumers if c.pending} == {"c1": 2}

    assert queue.ack([ids[0]]) == [ids[0]]
    assert queue.ack([ids[0], ids[1]]) == [ids[1]]  # an id acked before is not acked again
    status = queue.status()
    assert (status.depth, status.pending, status.oldest_pending_age_s) == (0, 0, None)


def test_entries_of_a_dead_consumer_are_claimed_after_the_idle_time(queue: FileQueue) -> None:
    ids = queue.enqueue([QueueItem(f"/{i}.wav") for i in range(5)])
    assert len(queue.read("dead", count=3, claim_idle_s=60)) == 3
    assert [e.path for e in queue.read("alive", count=10, claim_idle_s=60)] == ["/3.wav", "/4.wav"]
    time.sleep(0.3)
    claimed = queue.read("alive", count=10, claim_idle_s=0.2)
    assert [e.entry_id for e in claimed] == ids  # the dead one's three, and its own idle two again
    assert {c.name: c.pending for c in queue.status().consumers} == {"dead": 0, "alive": 5}
    assert sorted(queue.ack(ids)) == sorted(ids)
    queue.remove_consumers(removable_consumers(queue.status().consumers, idle_s=0))
    assert queue.status().consumers == []


def test_entries_of_a_consumer_known_dead_are_released_at_once(queue: FileQueue) -> None:
    ids = queue.enqueue([QueueItem(f"/{i}.wav") for i in range(1_005)])
    assert len(queue.read("dead", count=1_003, claim_idle_s=600)) == 1_003
    assert len(queue.read("alive", count=1, claim_idle_s=600)) == 1
    assert queue.release(["dead"], idle_s=600) == 1_003  # more than one page of 1,000
    claimed = queue.read("next", count=1_003, claim_idle_s=600)
    assert sorted(e.entry_id for e in claimed) == sorted(ids[:1_003])  # not "alive"'s own entry, idle for less
    assert {c.name: c.pending for c in queue.status().consumers} == {"dead": 0, "alive": 1, "next": 1_003}


def test_entry_time_and_removable_consumers_are_pure() -> None:
    assert entry_time_s("1700000000123-7") == pytest.approx(1_700_000_000.123)
    consumers = [ConsumerState("busy", 3, 9999.0), ConsumerState("idle", 0, 5000.0), ConsumerState("fresh", 0, 1.0)]
    assert removable_consumers(consumers, idle_s=3600) == ["idle"]
    assert removable_consumers(consumers, idle_s=3600, ended={"fresh"}) == ["idle", "fresh"]
    assert removable_consumers(consumers, idle_s=3600, ended={"busy"}) == ["idle"]


def test_latency_summary_interpolates_between_ranks() -> None:
    summary = latency_summary([float(v) for v in range(100, 0, -1)])
    assert summary == {"count": 100, "p50_s": 50.5, "p95_s": 95.05, "max_s": 100.0}
    assert latency_summary([7.0]) == {"count": 1, "p50_s": 7.0, "p95_s": 7.0, "max_s": 7.0}
    assert latency_summary([]) == {"count": 0, "p50_s": None, "p95_s": None, "max_s": None}


def test_an_ack_records_one_latency_sample_per_entry_acked_now(queue: FileQueue, redis_client: redis.Redis) -> None:
    log = LatencyLog(redis_client, maxlen=1000, stream=f"vxtest:latency:{uuid.uuid4().hex[:8]}")
    ids = queue.enqueue([QueueItem("/a.wav"), QueueItem("/b.wav")])
    queue.read("c1", count=10, claim_idle_s=60)
    start_ms = int(time.time() * 1000)
    samples = [LatencySample(ids[0], "/a.wav", 1.25, "scored"), LatencySample(ids[1], "/b.wav", 0.5, "quarantined")]
    assert queue.ack(ids, log=log, samples=samples) == ids
    assert queue.ack(ids, log=log, samples=samples) == []  # acked before: no second sample
    recorded = log.since(start_ms)
    assert [(s.entry_id, s.path, s.latency_s, s.outcome) for s in recorded] == [(ids[0], "/a.wav", 1.25, "scored"), (ids[1], "/b.wav", 0.5, "quarantined")]
    assert queue.status().depth == 0
    redis_client.delete(log.stream)


def test_an_ack_and_its_sample_are_one_step(queue: FileQueue, redis_client: redis.Redis) -> None:
    # Writes to the latency stream fail (the key holds a string): the acknowledgement must not happen without its sample.
    log = LatencyLog(redis_client, maxlen=1000, stream=f"vxtest:latency:{uuid.uuid4().hex[:8]}")
    redis_client.set(log.stream, "not a stream")
    [entry_id] = queue.enqueue([QueueItem("/a.wav")])
    queue.read("c1", count=10, claim_idle_s=60)
    with pytest.raises(ServiceError, match=f"Redis refused a command: .*WRONGTYPE latency log {log.stream} holds a string"):
        queue.ack([entry_id], log=log, samples=[LatencySample(entry_id, "/a.wav", 1.0, "scored")])
    redis_client.delete(log.stream)
    status = queue.status()
    assert (status.depth, status.pending) == (1, 1)  # still there, still pending: the next ack records it
    assert queue.ack([entry_id], log=log, samples=[LatencySample(entry_id, "/a.wav", 1.0, "scored")]) == [entry_id]
    assert [s.entry_id for s in log.since(0)] == [entry_id]
    redis_client.delete(log.stream)


def test_read_waits_for_new_entries_only_when_asked(queue: FileQueue) -> None:
    started = time.monotonic()
    assert queue.read("c", count=5, claim_idle_s=60) == []
    assert queue.read("c", count=5, claim_idle_s=60, block_s=0.3) == []
    assert time.monotonic() - started >= 0.25
    late = threading.Timer(0.2, lambda: queue.enqueue([QueueItem("/late.wav")]))
    late.start()
    started = time.monotonic()
    assert [e.path for e in queue.read("c", count=5, claim_idle_s=60, block_s=10)] == ["/late.wav"]
    assert time.monotonic() - started < 5
    late.join()


def test_a_wait_ends_early_when_asked_to_stop_waiting(queue: FileQueue) -> None:
    # A lingering drain's wait for new entries ends for a forget that wants the queue (flows/drain.py, give_way).
    asked = threading.Event()
    threading.Timer(0.3, asked.set).start()
    started = time.monotonic()
    assert queue.read("c", count=5, claim_idle_s=60, block_s=30, stop_waiting=asked.is_set) == []
    assert 0.3 <= time.monotonic() - started < 3  # asked between one-second slices
    queue.enqueue([QueueItem("/waiting.wav")])
    assert [e.path for e in queue.read("c", count=5, claim_idle_s=60, block_s=30, stop_waiting=asked.is_set)] == ["/waiting.wav"]


def test_another_producers_entry_without_a_path_or_time_is_read_not_fatal(queue: FileQueue, redis_client: redis.Redis) -> None:
    queue.ensure_group()
    odd = redis_client.xadd(queue.stream, {"file": "/a.wav", "enqueued_at": "yesterday"})
    endless = redis_client.xadd(queue.stream, {"path": "/c.wav", "enqueued_at": "1e400"})  # float() reads it as infinity
    ok = queue.enqueue([QueueItem("/b.wav")])[0]
    entries = queue.read("c", count=10, claim_idle_s=60)
    assert [(e.entry_id, e.path) for e in entries] == [(odd, ""), (endless, "/c.wav"), (ok, "/b.wav")]
    assert entries[0].enqueued_at == entry_time_s(odd) and entries[1].enqueued_at == entry_time_s(endless)  # Redis's own time
    assert queue.status().oldest_pending_age_s >= 0


def test_a_key_of_another_type_is_a_service_error_not_a_traceback(queue: FileQueue, redis_client: redis.Redis) -> None:
    redis_client.set(queue.stream, "another application's value")
    for use in (queue.status, lambda: queue.enqueue([QueueItem("a.wav")]), lambda: queue.read("c1", count=1, claim_idle_s=1)):
        with pytest.raises(ServiceError, match="Redis refused a command: WRONGTYPE"):
            use()


def test_forget_deletes_waiting_and_dead_drains_pending_entries_naming_a_content_path_or_subject(queue: FileQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("store.cache.STREAM_PAGE", 2)  # several pages of the stream
    queue.enqueue([QueueItem("/c/a.wav", subject_id="s1"), QueueItem("/c/b.wav", sha256="ab" * 32), QueueItem("/c/keep.wav", subject_id="s2")])
    pending = queue.read("dead-drain", count=3, claim_idle_s=60)  # delivered, never acknowledged
    queue.enqueue([QueueItem("/c/c.wav"), QueueItem("/c/keep2.wav")])
    named = {"hashes": {"ab" * 32}, "paths": {"/c/c.wav"}, "subjects": {"s1"}}
    expected = {(None, "/c/a.wav", "s1"), ("ab" * 32, "/c/b.wav", None), (None, "/c/c.wav", None)}

    assert queue.forget(**named, dry_run=True) == expected and queue.status().depth == 5
    assert queue.forget(**named) == expected
    status = queue.status()
    assert (status.depth, status.pending) == (2, 1)  # keep.wav, still the dead drain's; keep2.wav waiting
    claimed = queue.read("next-drain", count=10, claim_idle_s=0)
    assert sorted(entry.path for entry in claimed) == ["/c/keep.wav", "/c/keep2.wav"]
    assert pending[2].path == "/c/keep.wav"
    assert queue.forget(**named) == set()


def test_forget_deletes_the_latency_samples_naming_a_forgotten_file(queue: FileQueue, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("store.cache.STREAM_PAGE", 2)
    log = LatencyLog(redis_client, maxlen=1000, stream=f"vxtest:latency:{uuid.uuid4().hex[:8]}")
    paths = ["/c/a.wav", "/c/keep.wav", "/c/b.wav", "/c/a.wav", "/c/keep2.wav"]
    ids = queue.enqueue([QueueItem(path) for path in paths])
    queue.read("c1", count=10, claim_idle_s=60)
    queue.ack(ids, log=log, samples=[LatencySample(entry_id, path, 0.5, "scored") for entry_id, path in zip(ids, paths)])
    assert log.forget({"/c/a.wav", "/c/b.wav"}, dry_run=True) == 3 and len(log.since(0)) == 5
    assert log.forget({"/c/a.wav", "/c/b.wav"}) == 3
    assert [sample.path for sample in log.since(0)] == ["/c/keep.wav", "/c/keep2.wav"]
    redis_client.delete(log.stream)
