"""PredictionCache and LiveMetrics against a real Redis (system Redis db 15 or the embedded server), and through a proxy cut under them."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from store.cache import LiveMetrics, PredictionCache, RedisOutages, RedisUnreachable, connect_redis
from tests.proxy import proxied_redis
from voxflow import services
from voxflow.errors import ServiceError
from voxflow.settings import Settings


def sha() -> str:
    return uuid.uuid4().hex * 2


def test_put_then_get_many(redis_client: redis.Redis) -> None:
    cache = PredictionCache(redis_client, ttl_s=60, database="dba")
    docs = [{"audio_sha256": sha(), "model_version": "m1", "score": 0.25 * i, "label": "healthy"} for i in range(3)]
    cache.put_many(docs)
    missing = sha()
    found = cache.get_many([doc["audio_sha256"] for doc in docs] + [missing], "m1")
    assert found == {doc["audio_sha256"]: doc for doc in docs}
    assert cache.get_many([docs[0]["audio_sha256"]], "m2") == {}
    assert cache.get_many([], "m1") == {}


def test_cached_predictions_expire_within_ttl(redis_client: redis.Redis) -> None:
    cache = PredictionCache(redis_client, ttl_s=45, database="dba")
    doc = {"audio_sha256": sha(), "model_version": "m1", "score": 0.9, "label": "pathological"}
    cache.put_many([doc])
    assert 0 < redis_client.ttl(f"voxflow:cache:pred:dba:{doc['audio_sha256']}:m1") <= 45


def test_each_database_has_its_own_predictions_and_clears_only_its_own(redis_client: redis.Redis) -> None:
    dba, dbb = (PredictionCache(redis_client, ttl_s=60, database=f"{name}-{uuid.uuid4().hex[:6]}*") for name in ("dba", "dbb"))
    docs = [{"audio_sha256": sha(), "model_version": "m1", "score": 0.5, "label": "healthy"} for _ in range(3)]
    hashes = [doc["audio_sha256"] for doc in docs]
    dba.put_many(docs)
    dbb.put_many(docs[:1])
    assert dbb.get_many(hashes, "m1") == {hashes[0]: docs[0]}
    assert dba.clear() == 3
    assert dba.get_many(hashes, "m1") == {} and dbb.get_many(hashes, "m1") == {hashes[0]: docs[0]}


def test_metrics_stream_is_bounded_and_recent_is_newest_last(redis_client: redis.Redis) -> None:
    metrics = LiveMetrics(redis_client, maxlen=100)
    stream = f"test-{uuid.uuid4().hex[:8]}"
    for i in range(1_000):
        metrics.record(stream, {"files_per_s": i, "stage": "extract"})
    # MAXLEN ~ trims whole stream nodes (100 entries each), so a little over maxlen may remain.
    assert 100 <= redis_client.xlen(f"voxflow:metrics:{stream}") < 300
    recent = metrics.recent(stream, count=3)
    assert [sample["files_per_s"] for sample in recent] == ["997", "998", "999"]
    def order(entry_id: str) -> tuple[int, int]:  # "<ms>-<seq>": "…-8" comes before "…-10"
        milliseconds, sequence = entry_id.split("-")
        return int(milliseconds), int(sequence)

    assert recent[0]["stage"] == "extract" and order(recent[0]["id"]) < order(recent[-1]["id"])
    assert metrics.recent(f"missing-{uuid.uuid4().hex}") == []



def test_with_outages_tolerated_a_run_goes_on_while_redis_is_gone_and_says_so_once(test_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    proxy, url = proxied_redis(services.redis_url(test_settings))
    client = connect_redis(url)
    outages = RedisOutages()
    cache, metrics = PredictionCache(client, ttl_s=60, database="dba", outages=outages), LiveMetrics(client, maxlen=100, outages=outages)
    doc = {"audio_sha256": sha(), "model_version": "m1", "score": 0.5, "label": "healthy"}
    stream = f"test-{uuid.uuid4().hex[:8]}"
    try:
        proxy.close()  # the server goes away under the connected client
        with caplog.at_level(logging.INFO, logger="store.cache"):
            cache.put_many([doc])
            metrics.record(stream, {"files_per_s": 1})
            assert cache.get_many([doc["audio_sha256"]], "m1") == {}  # nothing known: the caller asks MongoDB
            assert [r.levelname for r in caplog.records] == ["WARNING"] and "Redis unreachable" in caplog.text

            proxy.start()
            cache.put_many([doc])
            metrics.record(stream, {"files_per_s": 2})
            assert cache.get_many([doc["audio_sha256"]], "m1") == {doc["audio_sha256"]: doc}
        assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Redis unreachable", "Redis answers again"]
        assert [sample["files_per_s"] for sample in metrics.recent(stream)] == ["2"]
    finally:
        client.close()
        proxy.release()


def test_without_outages_tolerated_redis_gone_is_an_error(test_settings: Settings) -> None:
    proxy, url = proxied_redis(services.redis_url(test_settings))
    client = connect_redis(url)
    try:
        proxy.close()
        with pytest.raises(RedisUnreachable, match="^Redis unreachable: "):
            PredictionCache(client, ttl_s=60, database="dba").put_many([{"audio_sha256": sha(), "model_version": "m1"}])
        with pytest.raises(ServiceError, match="^Redis unreachable: "):
            LiveMetrics(client, maxlen=100).record("test", {"files_per_s": 1})
    finally:
        client.close()
        proxy.release()


def test_a_refused_user_is_said_so_not_called_unreachable(redis_client: redis.Redis) -> None:
    pool = redis_client.connection_pool
    refused = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **{**pool.connection_kwargs, "username": "nobody", "password": "s3cretPW"}))
    try:
        with pytest.raises(RedisUnreachable, match="^Redis refused the configured user or password: ") as raised:
            LiveMetrics(refused, maxlen=100).record("test", {"files_per_s": 1})
        assert "s3cretPW" not in raised.value.reason
    finally:
        refused.close()


def test_forget_deletes_the_predictions_cached_for_these_contents_by_any_model_of_this_database_only(redis_client: redis.Redis) -> None:
    forgotten, kept = sha(), sha()
    cache, other = PredictionCache(redis_client, ttl_s=60, database="dba"), PredictionCache(redis_client, ttl_s=60, database="dbb")
    for store in (cache, other):
        store.put_many([{"audio_sha256": h, "model_version": m, "score": 0.5} for h in (forgotten, kept) for m in ("m1", "m2")])
    assert cache.forget({forgotten}, {"m1", "m2", "m3"}, dry_run=True) == 2
    assert cache.forget({forgotten}, {"m1", "m2", "m3"}) == 2
    assert cache.get_many([forgotten, kept], "m1").keys() == cache.get_many([forgotten, kept], "m2").keys() == {kept}
    assert other.get_many([forgotten], "m1").keys() == {forgotten}
