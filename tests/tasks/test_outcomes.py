"""Outcomes on nx-27017: a model's stored predictions joined with the labels collection, its training recordings and
their subjects left out, a window, groups by a metadata field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pymongo.database import Database
from sklearn.metrics import roc_auc_score

from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL, read_training_hashes
from models.outcomes import Verification, auc_interval, card_intervals, measure, verification_corrected
from models.registry import SHIPPED_DIR, shipped_bundle
from store.labels import LabelStore
from store.mongo import ResultStore
from tasks.outcomes import model_outcomes
from voxflow.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _label(sha: str, positive: bool, subject: str, **metadata: object) -> dict:
    return {"audio_sha256": sha, "label": POSITIVE_LABEL if positive else NEGATIVE_LABEL, "original_label": "", "subject_id": subject,
            "path": None, "source": "test", "metadata": metadata}


def _prediction(sha: str, score: float, *, version: str, days_ago: float = 1.0) -> dict:
    label = POSITIVE_LABEL if score >= 0.5 else NEGATIVE_LABEL
    return {"audio_sha256": sha, "model_version": version, "run_id": "r", "score": score, "label": label, "threshold": 0.5,
            "created_at": NOW - timedelta(days=days_ago)}


def test_the_champion_is_measured_on_what_it_never_trained_on(home_of_its_own: Settings, mongo_db: Database) -> None:
    card = shipped_bundle().card
    trained = sorted(read_training_hashes(SHIPPED_DIR, card))
    rng = np.random.default_rng(2)
    truth = np.r_[np.ones(40, bool), np.zeros(30, bool)]
    scores = np.clip(np.where(truth, rng.normal(0.6, 0.2, 70), rng.normal(0.4, 0.2, 70)), 0.01, 0.99)
    new = [f"{i:064x}" for i in range(70)]
    labels = [_label(sha, bool(t), f"new{i}", gender="fm"[i % 2]) for i, (sha, t) in enumerate(zip(new, truth))]
    labels += [_label(trained[0], True, "voice001"), _label(trained[1], False, "voice002")]  # trained on: left out
    labels += [_label(f"{900 + i:064x}", True, "voice001") for i in range(3)]  # a subject it trained on, again: left out
    labels += [_label(f"{800:064x}", True, "never-scored")]  # labelled, not scored: not counted
    LabelStore(mongo_db).replace(labels)
    ResultStore(mongo_db).insert_predictions(
        [_prediction(sha, float(s), version=card.version) for sha, s in zip(new, scores)]
        + [_prediction(sha, 0.9, version=card.version) for sha in (trained[0], trained[1], *(f"{900 + i:064x}" for i in range(3)))]
        + [_prediction(sha, 0.1, version="another-model") for sha in new[:40]]  # another model's scores of the positives
        + [_prediction(f"{700:064x}", 0.9, version=card.version)]  # scored, not labelled
    )

    report = model_outcomes(home_of_its_own, by="gender", now=NOW)
    assert (report.labelled, report.scored, report.trained_on, report.same_subjects, report.training_known) == (76, 75, 2, 3, True)
    assert (report.overall.n, report.overall.n_positive) == (70, 40)
    auc = report.overall.metric("auc")
    assert auc.live.value == pytest.approx(roc_auc_score(truth, scores)) and auc.expected == card.metrics["auc"]
    assert auc.expected_interval == card_intervals(card.metrics)["auc"]  # the shipped card's cohort: VOICED's 208
    sensitivity = report.overall.metric("sensitivity").live.value
    assert sensitivity == pytest.approx(np.mean(scores[truth] >= 0.5))
    assert list(report.groups) == ["f", "m"] and [g.n for g in report.groups.values()] == [35, 35]
    f = np.arange(70) % 2 == 0
    in_f, at_95 = report.groups["f"].metric("auc").live, auc_interval(truth[f], scores[f])
    assert in_f == auc_interval(truth[f], scores[f], level=0.975) and report.group_level == 0.975  # 2 groups: 1 - 0.05 / 2
    assert in_f.value == pytest.approx(roc_auc_score(truth[f], scores[f])) and in_f.high - in_f.low > at_95.high - at_95.low
    assert report.header() == (f"70 labelled recordings {card.version} scored and never trained on (40 pathological); "
                               "left out: 2 it trained on, 3 more of subjects it trained on")
    doc = report.as_doc()
    assert doc["groups"]["m"]["n"] == 35 and doc["summary"] == report.line() and doc["n"] == 70
    assert sum(row["n"] for row in doc["calibration"]) == 70 and doc["groups"]["m"]["calibration"]
    stored = report.as_stored()  # bins and groups of 30 recordings or more; no group's calibration
    assert stored["calibration"] == [row for row in doc["calibration"] if row["n"] >= 30] and stored["groups"]["m"]["calibration"] == []


def test_a_window_counts_only_recent_predictions_and_a_model_gone_wrong_is_worse(home_of_its_own: Settings, mongo_db: Database) -> None:
    card = shipped_bundle().card
    rng = np.random.default_rng(4)
    truth = rng.uniform(size=300) < 0.6
    old = [f"{i:064x}" for i in range(100)]
    recent = [f"{1000 + i:064x}" for i in range(200)]
    LabelStore(mongo_db).replace([_label(sha, bool(t), f"s{sha[-4:]}") for sha, t in zip(old + recent, truth)])
    good = np.where(truth[:100], 0.8, 0.2)  # the old predictions: perfect
    chance = rng.uniform(size=200)  # the recent ones: a broken microphone, say
    ResultStore(mongo_db).insert_predictions(
        [_prediction(sha, float(s), version=card.version, days_ago=20) for sha, s in zip(old, good)]
        + [_prediction(sha, float(s), version=card.version, days_ago=2) for sha, s in zip(recent, chance)]
    )
    week = model_outcomes(home_of_its_own, days=7, now=NOW)
    assert week.overall.n == 200 and week.since == NOW - timedelta(days=7)
    assert "auc" in week.overall.worse and week.line().startswith(f"{len(week.overall.worse)} of 5 metrics worse than the card of {card.version} says: auc ")
    assert week.line().endswith("(200 recordings)")
    everything = model_outcomes(home_of_its_own, now=NOW)
    assert everything.overall.n == 300 and everything.since is None
    # From the quarter hour, as the rollup counts what it screened: a recording stored 5 minutes into the window's first
    # quarter hour is in both, and every recording of the window is labelled (not "labels skewed" for one unseen).
    edge = f"{999:064x}"
    LabelStore(mongo_db).replace([_label(edge, True, "edge")])
    ResultStore(mongo_db).insert_predictions([_prediction(edge, 0.7, version=card.version, days_ago=7 - 5 / 1440)])
    later = model_outcomes(home_of_its_own, days=7, now=NOW + timedelta(minutes=14))
    assert later.since == NOW - timedelta(days=7) and later.verification.complete and later.overall.n == 201, later.verification


def test_too_few_to_judge_says_why(home_of_its_own: Settings, mongo_db: Database) -> None:
    card = shipped_bundle().card
    report = model_outcomes(home_of_its_own, now=NOW)
    assert (report.labelled, report.overall.n, report.overall.worse) == (0, 0, [])
    assert report.line() == "not judged: no reference labels imported (voxflow labels import FILE) (0 recordings)"

    trained = sorted(read_training_hashes(SHIPPED_DIR, card))[:30]
    LabelStore(mongo_db).replace([_label(sha, i % 2 == 0, f"v{i}") for i, sha in enumerate(trained)])
    assert model_outcomes(home_of_its_own, now=NOW).line() == f"not judged: {card.version} scored none of the 30 labelled recordings (0 recordings)"
    ResultStore(mongo_db).insert_predictions([_prediction(sha, 0.7, version=card.version) for sha in trained])
    report = model_outcomes(home_of_its_own, now=NOW)
    assert (report.scored, report.trained_on, report.overall.n) == (30, 30, 0)
    assert report.line() == (f"not judged: every labelled recording {card.version} scored was left out "
                             "(it trained on them or their subjects) (0 recordings)")
    ResultStore(mongo_db).insert_predictions([_prediction(f"{i:064x}", 0.7, version=card.version) for i in range(12)])
    LabelStore(mongo_db).replace([_label(f"{i:064x}", True, f"n{i}") for i in range(12)])  # positives only
    report = model_outcomes(home_of_its_own, now=NOW)
    assert report.overall.metric("sensitivity").live.value == 1.0 and report.overall.metric("auc").live is None
    assert report.line() == f"no metric worse than the card of {card.version} says (12 recordings)"
    stored = report.as_stored()  # 12 recordings: a check kept in MongoDB keeps none of their metrics
    assert (stored["n"], stored["n_positive"], stored["metrics"], stored["worse"], stored["calibration"]) == (12, None, [], [], [])
    assert [row["n"] for row in report.as_doc()["calibration"]] == [12]  # shown, not kept
    assert stored["summary"] == "12 recordings measured: fewer than 30, their metrics are not kept"


def test_where_labels_arrive_mostly_for_the_flagged_sensitivity_and_specificity_are_corrected_for_it(
    home_of_its_own: Settings, mongo_db: Database,
) -> None:
    # A screening programme: every flagged recording is referred and diagnosed, 1 in 10 of the others audited. Measured on
    # the labelled alone, the misses go unseen and sensitivity looks far better than it is.
    card = shipped_bundle().card
    rng = np.random.default_rng(4)
    truth = rng.uniform(size=600) < 0.3
    flags = np.where(truth, rng.uniform(size=600) < 0.6, rng.uniform(size=600) < 0.2)  # a true sensitivity of 0.6, specificity 0.8
    scores = np.where(flags, 0.75, 0.25)
    shas = [f"{i:064x}" for i in range(600)]
    audited = flags | (rng.uniform(size=600) < 0.1)
    LabelStore(mongo_db).replace([_label(sha, bool(t), f"s{i}") for i, (sha, t, a) in enumerate(zip(shas, truth, audited)) if a])
    ResultStore(mongo_db).insert_predictions([_prediction(sha, float(s), version=card.version) for sha, s in zip(shas, scores)])
    trained = sorted(read_training_hashes(SHIPPED_DIR, card))[:3]  # scored, never labelled here: no part of what it screened
    ResultStore(mongo_db).insert_predictions([_prediction(sha, 0.9, version=card.version) for sha in trained])

    report = model_outcomes(home_of_its_own, now=NOW)
    labelled_flags, labelled_truth = flags[audited], truth[audited]
    assert report.verification == Verification(int(flags.sum()), int((~flags).sum()), int(labelled_flags.sum()), int((~labelled_flags).sum()))
    labelled_scores = np.where(labelled_flags, 0.75, 0.25)
    expected = verification_corrected(measure(labelled_truth, labelled_scores, labelled_flags, card.metrics), labelled_truth, labelled_flags,
                                      report.verification, card.metrics)
    assert report.overall.metrics == expected.metrics
    sens, spec = report.overall.metric("sensitivity_corrected"), report.overall.metric("specificity_corrected")
    naive = report.overall.metric("sensitivity").live
    assert naive.low > 0.8 and sens.live.low < 0.6 < sens.live.high and spec.live.low < 0.8 < spec.live.high, (naive, sens, spec)
    assert report.verification_line().startswith(f"labels for {int(flags.sum())} of the {int(flags.sum())} (100.0%) it flagged and ")
    assert report.as_doc()["verification"] == report.verification.as_doc()

    LabelStore(mongo_db).replace([_label(sha, bool(t), f"s{i}") for i, (sha, t) in enumerate(zip(shas, truth))])  # every one diagnosed
    complete = model_outcomes(home_of_its_own, now=NOW)
    assert complete.verification.complete and complete.verification_line() is None
    assert [m.name for m in complete.overall.metrics] == ["auc", "sensitivity", "specificity", "uar", "brier"]
