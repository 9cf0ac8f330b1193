"""Measuring the champion on its labelled predictions (``voxflow outcomes --by gender``) in a store of ``--clips``
recordings (``--labelled``: the share with a label), next to plain reads, in the same invocation, of the same model's
predictions (the find ``voxflow results --model V -o FILE`` streams) and of the labels: what the join, the left-out
list and the statistics add to reading.

The embedded servers on a fresh VOXFLOW_HOME. MongoDB holds, per clip, a label (with a gender) and two predictions: the
shipped baseline's (the champion here) and another model's, so that the model filter has something to leave out. None
is on the baseline's training list (VOICED's recordings), so each is measured. Each figure is the best of ``--rounds``.

    .venv/bin/python bench/outcomes.py --clips 10000 50000
    .venv/bin/python bench/outcomes.py --clips 50000 --labelled 0.05
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from common import embedded_home, report
from models.registry import shipped_bundle
from store.labels import LabelStore
from store.mongo import PredictionFilter, ResultStore, open_database
from tasks.outcomes import model_outcomes
from voxflow import services

_BATCH = 5_000


def fill_database(settings, clips: int, version: str, *, labelled: float = 1.0) -> int:
    """Two predictions (``version``'s, and another model's) per clip, scores that separate the labels a little, and a
    label for the first ``labelled`` share of the clips (with a gender); returns how many are labelled."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=clips) < 0.6
    scores = np.clip(rng.normal(np.where(truth, 0.6, 0.4), 0.2), 0.0, 1.0)
    now = datetime.now(timezone.utc)
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        results, labels = ResultStore(db), LabelStore(db)
        results.ensure_indexes()
        labels.ensure_indexes()
        with_label = round(clips * labelled)
        for first in range(0, clips, _BATCH):
            batch = range(first, min(clips, first + _BATCH))
            labels.replace([{"audio_sha256": f"{i:064x}", "label": "pathological" if truth[i] else "healthy", "subject_id": f"s{i}",
                             "path": None, "source": "bench", "metadata": {"gender": "fm"[i % 2]}} for i in batch if i < with_label])
            results.insert_predictions([
                {"audio_sha256": f"{i:064x}", "model_version": model, "run_id": "bench", "score": float(scores[i]),
                 "label": "pathological" if scores[i] >= 0.5 else "healthy", "created_at": now}
                for i in batch for model in (version, "another-model")
            ])
    return with_label


def best_of(rounds: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--labelled", type=float, default=1.0, help="share of the clips with a label (default: all)")
    args = parser.parse_args()
    version = shipped_bundle().card.version
    for clips in args.clips:
        with tempfile.TemporaryDirectory() as tmp, embedded_home(Path(tmp) / "home") as settings:
            labelled = fill_database(settings, clips, version, labelled=args.labelled)
            with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
                read_s, read = best_of(args.rounds, lambda: list(ResultStore(db).iter_predictions(PredictionFilter(model_version=version))))
                labels_s, _ = best_of(args.rounds, lambda: LabelStore(db).all())
            outcomes_s, measured = best_of(args.rounds, lambda: model_outcomes(settings, by="gender"))
        if len(read) != clips or measured.overall.n != labelled or list(measured.groups) != ["f", "m"]:
            raise SystemExit(f"expected {clips} predictions read, {labelled} measured in groups f and m: {len(read)}, {measured.overall.n}, {list(measured.groups)}")
        report({
            "bench": "outcomes", "clips": clips, "labelled": labelled, "read_predictions_s": round(read_s, 3), "read_labels_s": round(labels_s, 3),
            "outcomes_s": round(outcomes_s, 3), "outcomes_vs_read": round(outcomes_s / read_s, 2),
            "outcomes_us_per_labelled": round(1e6 * outcomes_s / labelled, 1), "auc": round(measured.overall.metric("auc").live.value, 4),
        })


if __name__ == "__main__":
    main()
