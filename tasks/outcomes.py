"""Outcomes: a model's stored predictions joined with the reference labels imported since (``voxflow labels import``),
measured and judged against its card (:mod:`models.outcomes`).

Only recordings the model never trained on are a fair test of it: those on its training list are left out, and so are
other recordings of the subjects they came from (the model may know the voice), as a retrain compares models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from models.artifact import POSITIVE_LABEL, read_training_hashes
from models.outcomes import LEVEL, MIN_PER_CLASS, MISSING_GROUP, Outcomes, Verification, groups_of, measure, verification_corrected
from models.registry import model_folder
from store.counts import bucket_start, model_scores
from store.labels import LabelStore
from store.models import ModelStore
from store.mongo import ResultStore, open_database
from tasks.model_registry import resolve_bundle
from voxflow import services
from voxflow.settings import Settings


STORED_FLOOR = 30  # as input drift's: the metrics of fewer recordings say too much about each
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class OutcomeReport:
    """A model's outcomes: which labelled recordings were counted and left out, the metrics, and per group if asked."""

    model_version: str
    positive_label: str
    labelled: int  # labels in the collection
    scored: int  # of those, scored by the model (since ``since``)
    trained_on: int  # left out: on the model's training list
    same_subjects: int  # left out: other recordings of subjects on it
    training_known: bool  # False: a model saved without its training list; nothing could be left out
    since: datetime | None
    overall: Outcomes
    by: str | None = None
    groups: dict[str, Outcomes] = field(default_factory=dict)
    group_level: float = LEVEL  # the groups' intervals' confidence, widened for their number
    verification: Verification | None = None  # who got a label, of the recordings it screened

    def verification_line(self) -> str | None:
        """Who got a label, when not every screened recording did, and what the corrected metrics are; None when all did."""
        if self.verification is None or self.verification.complete:
            return None
        return (f"{self.verification.text()}: the *_corrected metrics count the rest as the labelled of each kind stand for "
                "them (Begg and Greenes; valid where who gets a label depends on the flag alone), and are judged instead of the "
                "uncorrected (labels skewed); AUC, Brier and the groups are of the labelled recordings only")

    def header(self) -> str:
        """Which recordings were measured, in one line."""
        window = "" if self.since is None else f" since {self.since:%Y-%m-%d %H:%M} UTC"
        counted = (f"{self.overall.n} labelled recordings {self.model_version} scored{window} and never trained on "
                   f"({self.overall.n_positive} {self.positive_label})")
        if not self.training_known:
            return (f"{counted}; its card lists no training recordings (saved without them), so any of them among these "
                    "count too and make it look better")
        left = [f"{self.trained_on} it trained on"] * bool(self.trained_on) + [f"{self.same_subjects} more of subjects it trained on"] * bool(self.same_subjects)
        return f"{counted}; left out: {', '.join(left)}" if left else counted

    def line(self) -> str:
        """The verdict in one line: the metrics worse than the card says, or that none is."""
        overall = self.overall
        worse = [overall.metric(name) for name in overall.worse]
        judged = [m for m in overall.metrics if m.live is not None]
        if worse:
            said = "; ".join(f"{m.name} {m.live.text()} against {m.expected_text()}" for m in worse if m.live and m.expected is not None)
            text = f"{len(worse)} of {len(overall.metrics)} metrics worse than the card of {self.model_version} says: {said}"
        elif judged:
            text = f"no metric worse than the card of {self.model_version} says"
        else:
            text = f"not judged: {self._why_too_few()}"
        groups = [name for name, outcomes in self.groups.items() if outcomes.worse]
        if groups:
            text += f"; by {self.by}, worse in {', '.join(groups)}"
        return f"{text} ({overall.n} recordings)"

    def _why_too_few(self) -> str:
        if not self.labelled:
            return "no reference labels imported (voxflow labels import FILE)"
        window = "" if self.since is None else " in the window"
        if not self.scored:
            return f"{self.model_version} scored none of the {self.labelled} labelled recordings{window}"
        if not self.overall.n:
            return f"every labelled recording {self.model_version} scored{window} was left out (it trained on them or their subjects)"
        return f"fewer than {MIN_PER_CLASS} labelled recordings of a class"

    def as_stored(self) -> dict[str, Any]:
        """:meth:`as_doc` less the counts and metrics of fewer than :data:`STORED_FLOOR` recordings, overall, in a group
        or in a calibration bin (the groups keep none): a stored check outlives ``voxflow forget``, and a group of one
        would keep that person's diagnosis."""
        doc = self.as_doc()
        if self.overall.n < STORED_FLOOR:
            summary = f"{self.overall.n} recordings measured: fewer than {STORED_FLOOR}, their metrics are not kept"
            doc.update(n_positive=None, metrics=[], worse=[], summary=summary)
        doc["calibration"] = [row for row in doc["calibration"] if row["n"] >= STORED_FLOOR]
        doc["groups"] = {name: {**group, "calibration": []} for name, group in doc["groups"].items() if group["n"] >= STORED_FLOOR}
        doc["groups_not_kept"] = len(self.groups) - len(doc["groups"])
        return doc

    def as_doc(self) -> dict[str, Any]:
        """JSON-ready: the counts, the metrics, and each group's (``voxflow outcomes --json``)."""
        return {
            "model_version": self.model_version, "labelled": self.labelled, "scored": self.scored, "trained_on": self.trained_on,
            "same_subjects": self.same_subjects, "training_known": self.training_known,
            "since": None if self.since is None else self.since.isoformat(timespec="seconds"),
            **self.overall.as_doc(), "summary": self.line(),
            "by": self.by, "group_level": round(self.group_level, 6), "groups": {name: outcomes.as_doc() for name, outcomes in self.groups.items()},
            "verification": None if self.verification is None else self.verification.as_doc(),
        }


def model_outcomes(
    settings: Settings, *, model_version: str | None = None, days: float | None = None, by: str | None = None, now: datetime | None = None
) -> OutcomeReport:
    """Measure ``model_version`` (default: the champion) on its predictions of labelled recordings.

    Parameters
    ----------
    days : float, optional
        Only predictions stored in the last this many days (from the start of that quarter hour); default: all.
    by : str, optional
        A label metadata field (``gender``, ``site``, ``age``...) to measure each of its groups apart, at
        ``1 - 0.05 / groups`` confidence (Bonferroni), so that one group out of many is not worse by chance alone.
    """
    # From the quarter hour, as the rollup that counts what it screened is kept: both then count the same recordings.
    since = None if days is None else bucket_start((now or datetime.now(timezone.utc)) - timedelta(days=days))
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        card = resolve_bundle(ModelStore(db), settings.models_dir, model_version).card
        seen = read_training_hashes(model_folder(settings.models_dir, card.version), card)
        trained = seen or frozenset()
        labels = LabelStore(db).all()
        by_sha = {doc["audio_sha256"]: doc for doc in labels}
        # The labelled recordings' predictions, and those of its training recordings, labelled or not, in one read.
        scored = ResultStore(db, retry_s=0).scores_of(card.version, by_sha.keys() | trained, since=since)
        screened, flagged = model_scores(db, since or _EPOCH, card.version)  # the rollup: every recording it scored, labelled or not
    # What it scored of its training recordings is no part of what it screened.
    scored_trained = [p["label"] == card.positive_label for p in scored if p["audio_sha256"] in trained]
    predictions = [p for p in scored if p["audio_sha256"] in by_sha]
    subjects = {doc["subject_id"] for doc in labels if doc["audio_sha256"] in trained and doc.get("subject_id")}
    rows, trained_on, same_subjects, same_subjects_flagged = [], 0, 0, 0
    for prediction in predictions:
        label = by_sha[prediction["audio_sha256"]]
        if prediction["audio_sha256"] in trained:
            trained_on += 1
        elif label.get("subject_id") and label["subject_id"] in subjects:
            same_subjects += 1
            same_subjects_flagged += prediction["label"] == card.positive_label
        else:
            rows.append((label, prediction))
    # The labels collection stores POSITIVE_LABEL whatever its manifest said; a prediction, its model's positive_label.
    truth = np.array([label["label"] == POSITIVE_LABEL for label, _ in rows], dtype=bool)
    scores = np.array([prediction["score"] for _, prediction in rows], dtype=np.float64)
    predicted = np.array([prediction["label"] == card.positive_label for _, prediction in rows], dtype=bool)
    groups: dict[str, Outcomes] = {}
    group_level = LEVEL
    if by is not None:
        named = np.array(groups_of([(label.get("metadata") or {}).get(by) for label, _ in rows]), dtype=object)
        names = sorted(set(named.tolist()), key=lambda g: (g == MISSING_GROUP, _sort_key(g)))
        group_level = 1 - (1 - LEVEL) / max(len(names), 1)  # Bonferroni: more groups, more chances of one out by chance
        for name in names:
            chosen = named == name
            groups[name] = measure(truth[chosen], scores[chosen], predicted[chosen], card.metrics, level=group_level)
    # The screened recordings less those left out (those of them with a label: others it trained on cannot be told apart).
    verification = Verification.of(
        sum(screened) - len(scored_trained) - same_subjects, flagged - sum(scored_trained) - same_subjects_flagged,
        int(predicted.sum()), int((~predicted).sum()),
    )
    overall = measure(truth, scores, predicted, card.metrics)
    if not verification.complete:
        overall = verification_corrected(overall, truth, predicted, verification, card.metrics)
    return OutcomeReport(
        card.version, card.positive_label, len(labels), len(predictions), trained_on, same_subjects, seen is not None, since,
        overall, by, groups, group_level, verification,
    )


def _sort_key(group: str) -> tuple[float, str]:
    """Numeric bands in numeric order (``9-17`` before ``18-30``), names alphabetically."""
    try:
        return float(group.split("-")[0]), group
    except ValueError:
        return float("inf"), group
