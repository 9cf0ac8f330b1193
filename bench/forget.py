"""Forgetting one subject (``voxflow forget --subject``) in a store of ``--clips`` recordings, next to a full read of
the feature store in the same invocation (what reading the store costs a retrain).

The embedded servers on a fresh VOXFLOW_HOME. MongoDB holds a prediction and a label per clip; the feature store a
row per clip, written as analyze writes it (chunks of 64 files, ``bench/feature_store.py``'s synthetic rows, three
clips per subject), then merged into parts (``voxflow features compact``) unless ``--chunks``. Forget runs as the
command does (:func:`tasks.erasure.erase`: locks, the running-runs check, every store, the erasure record), once as a
dry run, then for real; each is checked to have found the subject's three recordings.

    .venv/bin/python bench/forget.py --clips 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import embedded_home, report
from feature_store import write_store
from features.schema import FEATURE_VERSION
from store.feature_store import FeatureStore
from store.labels import LabelStore
from store.mongo import ResultStore, open_database
from tasks.erasure import Named, erase
from voxflow import services

_BATCH = 5_000


def fill_database(settings, clips: int) -> None:
    """A prediction and a label per clip, listed as ``write_store`` lists its rows."""
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        results, labels = ResultStore(db), LabelStore(db)
        results.ensure_indexes()
        labels.ensure_indexes()
        now = datetime.now(timezone.utc)
        for first in range(0, clips, _BATCH):
            listed = [(f"{i:064x}", f"/data/batch/clip{i:07d}.wav", f"s{i // 3}") for i in range(first, min(clips, first + _BATCH))]
            results.insert_predictions([
                {"audio_sha256": sha, "model_version": "m1", "path": path, "subject_id": subject, "score": 0.5, "threshold": 0.5, "created_at": now}
                for sha, path, subject in listed
            ])
            labels.replace([{"audio_sha256": sha, "label": "healthy", "path": path, "subject_id": subject, "source": "bench"} for sha, path, subject in listed])


def timed_erase(settings, subject: str, *, dry_run: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    done = erase(Named(subjects=frozenset({subject})), settings, dry_run=dry_run)
    seconds = time.perf_counter() - started
    if (done["recordings"], done["predictions"], done["labels"], done["feature_rows"]) != (3, 3, 3, 3):
        raise SystemExit(f"forget did not find the subject's 3 recordings: {done}")
    return seconds, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--chunks", action="store_true", help="leave the feature store's chunk files unmerged")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, embedded_home(Path(tmp) / "home") as settings:
        store = FeatureStore(settings.feature_store_dir)
        files = write_store(store.root, clips=args.clips, chunk=64, runs=max(1, args.clips // 6400))
        if not args.chunks:
            store.compact(feature_version=FEATURE_VERSION)
        fill_database(settings, args.clips)
        started = time.perf_counter()
        rows = len(store.read(feature_version=FEATURE_VERSION))
        read_s = time.perf_counter() - started
        subject = f"s{args.clips // 6}"  # three recordings in the middle of the store
        dry_s, _ = timed_erase(settings, subject, dry_run=True)
        forget_s, done = timed_erase(settings, subject, dry_run=False)
        left = len(store.read(feature_version=FEATURE_VERSION))
    if left != rows - 3:
        raise SystemExit(f"the feature store holds {left} rows after the forget, not {rows - 3}")
    report({
        "bench": "forget", "clips": args.clips, "chunk_files_written": files, "merged": not args.chunks,
        "feature_files_rewritten": done["feature_files_rewritten"], "read_store_s": round(read_s, 3), "dry_run_s": round(dry_s, 3),
        "forget_s": round(forget_s, 3), "forget_over_read": round(forget_s / read_s, 2),
    })


if __name__ == "__main__":
    main()
