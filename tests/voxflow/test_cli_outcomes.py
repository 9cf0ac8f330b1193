"""``voxflow outcomes``: an analyst scores recordings, their diagnoses arrive later, and the champion is measured on them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from models.artifact import POSITIVE_LABEL
from tests.voxflow_cli import env_db, last_json, run_cli
from voxflow.cli import OUTCOMES_LEVEL, OUTCOMES_MIN_PER_CLASS, build_parser
from voxflow.demo import write_demo_corpus


@pytest.mark.slow
def test_scored_recordings_are_measured_once_labelled_those_trained_on_left_out(cli_env: dict[str, str], tmp_path: Path, voiced_dir: Path) -> None:
    manifest = write_demo_corpus(tmp_path / "corpus", n=36)
    analyzed = run_cli(["analyze", str(manifest)], cli_env)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    analyzed = run_cli(["analyze", str(voiced_dir / "voice00[1-6].hea")], cli_env)  # six the shipped baseline trained on
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    before = last_json(run_cli(["outcomes", "--json"], cli_env))
    assert (before["labelled"], before["n"]) == (0, 0) and before["summary"].startswith("not judged: no reference labels imported"), before

    # The diagnoses arrive with a site column; VOICED's come from its -info.txt files, age and gender with them.
    with manifest.open() as source, (tmp_path / "diagnoses.csv").open("w", newline="") as target:
        rows = list(csv.DictReader(source))
        writer = csv.DictWriter(target, [*rows[0], "site"])
        writer.writeheader()
        writer.writerows({**row, "path": str(manifest.parent / row["path"]), "site": "north" if i % 3 else "south"} for i, row in enumerate(rows))
    for args in (["labels", "import", str(tmp_path / "diagnoses.csv")], ["labels", "import", str(voiced_dir), "--voiced"]):
        imported = run_cli(args, cli_env)
        assert imported.returncode == 0, imported.stderr[-3000:]

    report = last_json(run_cli(["outcomes", "--json", "--by", "site"], cli_env))
    assert (report["labelled"], report["scored"], report["trained_on"], report["n"]) == (36 + 208, 36 + 6, 6, 36), report
    db = env_db(cli_env)
    labels = {doc["audio_sha256"]: doc["label"] == POSITIVE_LABEL for doc in db["labels"].find()}
    scored = [doc for doc in db["predictions"].find() if doc["path"].startswith(str(manifest.parent))]
    expected_auc = roc_auc_score([labels[doc["audio_sha256"]] for doc in scored], [doc["score"] for doc in scored])
    auc = next(m for m in report["metrics"] if m["metric"] == "auc")
    assert auc["live"]["value"] == pytest.approx(expected_auc, abs=1e-4) and auc["live"]["low"] <= auc["live"]["value"] <= auc["live"]["high"]
    assert sorted(report["groups"]) == ["north", "south"] and sum(g["n"] for g in report["groups"].values()) == 36

    text = run_cli(["outcomes", "--by", "site"], cli_env).stdout.splitlines()
    assert text[0] == f"36 labelled recordings {report['model_version']} scored and never trained on (18 pathological); left out: 6 it trained on", text
    assert text[1].split() == ["metric", "live", "ci_95", "cross_validated", "verdict"] and text[2].split()[0] == "auc", text
    assert text[2].split()[2] == f"{auc['live']['low']:.3f}-{auc['live']['high']:.3f}" and text[-1] == report["summary"], text
    card = auc["expected_interval"]  # the card's estimate with its cohort's interval
    assert text[2].split()[3:5] == [f"{auc['expected']:.3f}", f"({card['low']:.3f}-{card['high']:.3f})"] and card["low"] < auc["expected"] < card["high"], text
    assert text[7] == "by site, each group against the card's estimates (97.5% intervals, for 2 groups):" and text[8].split()[:3] == ["group", "n", "positive"], text
    assert sum(row["n"] for row in report["calibration"]) == 36
    calibrated = run_cli(["outcomes", "--calibration"], cli_env).stdout.splitlines()
    start = calibrated.index("calibration: how often the recordings of each score bin were pathological (95% interval), "
                             "and the card's out-of-fold rate there:")
    assert calibrated[start + 1].split() == ["score", "n", "mean_score", "observed", "cross_validated"]
    assert len(calibrated) == start + 2 + len(report["calibration"]) + 1, calibrated  # a row per bin, then the summary
    first = report["calibration"][0]
    assert calibrated[start + 2].split()[:2] == [f"{first['bin_low']:.1f}-{first['bin_high']:.1f}", str(first["n"])], calibrated
    gender = last_json(run_cli(["outcomes", "--json", "--by", "gender", "--days", "1"], cli_env))
    assert gender["n"] == 36 and list(gender["groups"]) == ["(none)"]  # the demo's labels say no gender: one group, named so


def test_the_help_names_the_floor_models_outcomes_judges_by() -> None:
    from models.outcomes import LEVEL, MIN_PER_CLASS

    assert OUTCOMES_MIN_PER_CLASS == MIN_PER_CLASS and OUTCOMES_LEVEL == f"{LEVEL:.0%}"
    outcomes = build_parser()._subparsers._group_actions[0].choices["outcomes"]  # type: ignore[union-attr]
    assert f"'too few' below {MIN_PER_CLASS} labelled recordings of a class" in outcomes.format_help().replace("\n", " ")


def test_an_empty_field_to_group_by_is_refused_a_padded_one_read_as_a_manifest_column_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["outcomes", "--by", " "])
    assert "argument --by: an empty field names no label metadata" in capsys.readouterr().err
    assert build_parser().parse_args(["outcomes", "--by", " site "]).by == "site"
