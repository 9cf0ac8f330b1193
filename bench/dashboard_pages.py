"""Dashboard page cost with 100,000 predictions: each page's queries, and its full AppTest render.

    .venv/bin/python bench/dashboard_pages.py --predictions 100000

(Not bench/dashboard.py: run as a script, that name would shadow the dashboard package.)

Seeds a scratch database on the embedded nx-27017 (a temporary VOXFLOW_HOME): predictions spread
over 30 days (stored chunk by chunk through ``ResultStore``, which keeps the ``prediction_counts`` and ``score_counts`` rollups),
runs, quarantine records, scaling events, models, a backup, a queue and metric streams. Also times
storing one more chunk, with and without the rollups' upserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from streamlit.components.v2.manifest_scanner import scan_component_manifests

from dashboard import queries
from store.cache import connect_redis
from store.mongo import ResultStore, connect_mongo
from voxflow import services
from voxflow.settings import Settings

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = ("overview", "queue", "scaling", "runs", "models")
CHUNK = 48  # files per persisted chunk
DAYS = 30


def seed(settings: Settings, n: int) -> None:
    """Write ``n`` predictions and the documents every page reads.

    Predictions and quarantine records go through ``ResultStore`` in chunks of CHUNK documents sharing one
    ``created_at``, as ``tasks.persist`` writes them: both rollups are kept the product's way.
    """
    db = connect_mongo(services.mongo_uri(settings))[settings.mongo_db]
    results = ResultStore(db)
    results.ensure_indexes()
    db["scaling_events"].create_index([("time", -1)])
    rng = np.random.default_rng(0)
    now = datetime.now(timezone.utc)
    n_runs = max(1, n // 500)
    ages = np.sort(rng.uniform(0, DAYS * 86_400, n))[::-1]
    scores = rng.beta(2, 2, n)
    for start in range(0, n, CHUNK):
        created_at = now - timedelta(seconds=float(ages[start]))
        results.insert_predictions([
            {
                "audio_sha256": f"{i:064x}", "model_version": "xgb-bench", "feature_version": 1, "run_id": f"run-{i * n_runs // n:05d}",
                "path": f"/data/clip{i}.wav", "score": float(scores[i]), "label": "pathological" if scores[i] >= 0.5 else "healthy",
                "threshold": 0.5, "quality_flags": [], "duration_s": 5.0, "sample_rate": 16_000,
                "timings_ms": {"decode": float(rng.uniform(0.5, 3)), "features": float(rng.gamma(4, 20))},
                "created_at": created_at,
            }
            for i in range(start, min(start + CHUNK, n))
        ])
    results.insert_quarantine([
        {"run_id": f"run-{r:05d}", "stage": stage, "reason": f"{stage} problem", "path": f"/q/{r}-{j}", "created_at": now}
        for r in range(n_runs) for j, stage in enumerate(["quality"] * 15 + ["decode"] * 4 + ["timeout"])
    ])
    db["runs"].insert_many([
        {"run_id": f"run-{r:05d}", "source": f"/batches/{r}", "status": "completed", "started_at": now - timedelta(seconds=DAYS * 86_400 * (1 - r / n_runs)),
         "seen": 520, "scored": 500, "skipped": 0, "quarantined": 20, "wall_s": 60.0, "clips_per_s": 8.6, "model_version": "xgb-bench"}
        for r in range(n_runs)
    ])
    db["scaling_events"].insert_many([
        {"time": now - timedelta(minutes=10 * k), "workers_before": 1 + k % 4, "workers_after": 1 + (k + 1) % 4, "backlog": 10 * k,
         "reason": "worker added", "recommendation": {"action": "hold"}}
        for k in range(144)
    ])
    db["models"].insert_one({"version": "xgb-bench", "status": "champion", "threshold": 0.5, "metrics": {"auc": 0.7}, "created_at": now, "training": {"n": 208, "n_positive": 151}})
    db["backups"].insert_one({"backup_id": "b1", "started_at": now, "finished_at": now, "path": "/b/1", "counts": {"predictions": n}, "verified": True, "status": "completed"})
    client = connect_redis(services.redis_url(settings))
    client.flushdb()
    for i in range(1_000):
        client.xadd(queries.QUEUE_STREAM, {"path": f"/in/{i}.wav"})
    client.xgroup_create(queries.QUEUE_STREAM, queries.QUEUE_GROUP, id="0")
    client.xreadgroup(queries.QUEUE_GROUP, "a1", {queries.QUEUE_STREAM: ">"}, count=100)
    for i in range(2_000):
        client.xadd(queries.LATENCY_STREAM, {"latency_s": float(rng.gamma(2, 0.3))})
        client.xadd(queries.WORKERS_STREAM, {"workers": 1 + i % 4, "backlog": i % 300, "processing": 1 + i % 4, "queued": i % 12, "cpu_pct": 60.0, "memory_pct": 30.0})


def page_queries(settings: Settings) -> dict[str, Callable[[], object]]:
    """The reads each page makes, called directly."""
    db = connect_mongo(services.mongo_uri(settings))[settings.mongo_db]
    client = connect_redis(services.redis_url(settings))
    window, chart, week = (queries.utc_since(h) for h in (settings.dashboard_window_h, 6, 24 * 7))
    champion = queries.champion_document(db)
    fortnight = queries.utc_since(24 * 14)
    return {
        "overview": lambda: (
            queries.predictions_count(db), queries.run_totals(db, window), queries.latency_samples(client, window),
            queries.counts_per_day(db, fortnight, settings.dashboard_timezone),
            queries.processing_percentiles(queries.recent_predictions(db, min(window, chart)), window),
            queries.worker_samples(client, window), queries.queue_state(client), queries.champion_document(db),
        ),
        "queue": lambda: (queries.queue_state(client), queries.worker_samples(client, window)),
        "scaling": lambda: (queries.scaling_events(db, window), queries.worker_samples(client, window)),
        "runs": lambda: (queries.recent_runs(db), queries.quarantine_reasons(db, "run-00000")),
        "models": lambda: (
            queries.champion_document(db), queries.model_documents(db), queries.last_backup(db),
            queries.score_distribution(db, week, model_version=champion["version"]),
        ),
    }


def chunk_persist_ms(settings: Settings, repeats: int) -> dict[str, float]:
    """Median ms to store one chunk of CHUNK new predictions: a bare ``insert_many``, and ``ResultStore`` (which adds the rollups' upserts)."""
    db = connect_mongo(services.mongo_uri(settings))[settings.mongo_db]
    results = ResultStore(db)
    batches = iter(range(10**9, 10**10, CHUNK))

    def chunk() -> list[dict]:
        start, now = next(batches), datetime.now(timezone.utc)
        return [{"audio_sha256": f"{i:064x}", "model_version": "xgb-bench", "score": 0.7, "threshold": 0.5, "created_at": now} for i in range(start, start + CHUNK)]

    return {
        "insert_many": median_ms(lambda: db["predictions"].insert_many(chunk(), ordered=False), repeats),
        "result_store": median_ms(lambda: results.insert_predictions(chunk()), repeats),
    }


def median_ms(action: Callable[[], object], repeats: int, *, before: Callable[[], object] = lambda: None) -> float:
    """Median wall time of ``action`` over ``repeats`` calls after one warm-up call, ``before`` run (untimed) ahead of each."""
    action()  # warm: connections, imports, SQLite page cache
    times = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        action()
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times), 1)


def render_ms(page: str, repeats: int) -> tuple[float, float]:
    """(render with empty Streamlit data caches, render with warm ones) of one page in AppTest, medians of ``repeats``.

    Each render is a fresh ``AppTest``, as the README's figures always were; that includes AppTest's scan of
    the installed packages for components (``apptest_component_scan_ms``), which a server does once at start.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def render() -> None:
        app = AppTest.from_file(str(APP), default_timeout=60).switch_page(f"views/{page}.py").run()
        if app.exception:
            raise RuntimeError(f"{page}: {app.exception[0].value}")

    return median_ms(render, repeats, before=st.cache_data.clear), median_ms(render, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vxdash-") as tmp:
        settings = Settings(home=Path(tmp), redis_url=None, mongo_uri=None, mongo_db="bench_dashboard")
        os.environ.update(VOXFLOW_HOME=tmp, VOXFLOW_MONGO_DB=settings.mongo_db)
        for name in ("VOXFLOW_MONGO_URI", "VOXFLOW_REDIS_URL", "VOXFLOW_DASK_ADDRESS"):
            os.environ.pop(name, None)
        try:
            started = time.perf_counter()
            seed(settings, args.predictions)
            seed_s = time.perf_counter() - started
            reads = page_queries(settings)
            render_ms("queue", 1)  # imports and connections, paid once per server process
            pages = {}
            for page in PAGES:
                cold, warm = render_ms(page, args.repeats)
                pages[page] = {"queries_ms": median_ms(reads[page], args.repeats), "render_ms": warm, "first_render_ms": cold}
            persist = chunk_persist_ms(settings, 4 * args.repeats)
            scan = median_ms(scan_component_manifests, args.repeats)
        finally:
            services.stop_services(settings)
    print(f"{'page':<10} {'queries ms':>11} {'AppTest render ms':>18} {'first render ms':>16}")
    for page, cost in pages.items():
        print(f"{page:<10} {cost['queries_ms']:>11} {cost['render_ms']:>18} {cost['first_render_ms']:>16}")
    print(f"one chunk of {CHUNK} new predictions: insert_many {persist['insert_many']} ms, ResultStore (+ the two rollup upserts) {persist['result_store']} ms")
    print(f"each fresh AppTest first scans the installed packages for Streamlit components: {scan} ms (a server does it once, at start)")
    print(f"seeded {args.predictions:,} predictions in {seed_s:.1f} s; medians of {args.repeats} renders after a warm-up (imports done); first render = empty st.cache_data; nx-27017 + embedded Redis")
    print(json.dumps({"bench": "dashboard", "predictions": args.predictions, "seed_s": round(seed_s, 1), "pages": pages, "apptest_component_scan_ms": scan, "chunk_persist_ms": persist}))


if __name__ == "__main__":
    main()
