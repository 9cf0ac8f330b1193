"""End to end: the real CLI, Prefect server, Dask worker processes, Redis and the MongoDB wire server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from prefect import flow

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from features.synth import synth_vowel
from flows.analyze import analyze_batch
from store.feature_store import FeatureStore
from tasks.cluster import handed_over, with_handed_cluster
from tests.flows.conftest import repeated_hashes, shift_events
from tests.voxflow_cli import REPO, env_db, finish, last_json, run_cli, start_cli, wait_for_predictions
from voxflow.demo import write_demo_corpus
from voxflow.settings import Settings, get_settings

pytestmark = pytest.mark.slow


@flow
def _cluster_of_a_flow_run() -> str | None:
    return with_handed_cluster(get_settings()).dask_address  # as analyze_batch reads it


def test_the_cluster_handed_over_in_process_reaches_the_flow_and_no_trigger_can_name_one(in_process: Settings) -> None:
    # The CLI's cluster started ahead reaches the flow in its process; the deployment takes no scheduler address, which anyone
    # who may trigger it over the API could point at a host of theirs (was analyze_batch's dask_address parameter).
    assert "dask_address" not in analyze_batch.parameters.properties
    with handed_over("tcp://127.0.0.1:8786"):
        assert _cluster_of_a_flow_run() == "tcp://127.0.0.1:8786"
    assert _cluster_of_a_flow_run() == in_process.dask_address


def test_voiced_run_then_rerun_scores_nothing_new(cli_env: dict[str, str], voiced_manifest: Path, tmp_path: Path) -> None:
    # Chunks larger than the batch: the CLI starts one worker (one per chunk of files), so adaptive scaling has to add
    # the second. Its 1 s target duration (5 s by default) makes it want two whatever this machine's speed: on a fast
    # one, the batch's queued chunks came to under 5 s of work and one worker was enough.
    adaptive = {**cli_env, "DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION": "1s"}
    first = last_json(run_cli(["analyze", str(voiced_manifest), "--json", "--chunk-size", "256"], adaptive))
    assert first["seen"] == 208 and first["scored"] + first["quarantined"] == 208
    assert first["scored"] >= 200, first  # real recordings: at most a handful may fail the gate
    assert first["skipped"] == 0 and first["clips_per_s"] > 0
    for key in ("run_id", "wall_s", "model_version", "feature_version"):
        assert key in first
    phases = [first["discover_s"], first["skip_known_s"], first["score_s"]]
    assert min(phases) >= 0 and first["score_s"] > 0 and sum(phases) <= first["wall_s"] + 0.01, first
    predictions = env_db(cli_env)["predictions"]
    assert predictions.count_documents({}) == first["scored"]
    doc = predictions.find_one({"subject_id": "voice001"})
    assert doc["model_version"] == first["model_version"] and 0.0 <= doc["score"] <= 1.0
    assert doc["label"] in {"healthy", "pathological"} and len(doc["top_factors"]) == 3
    assert doc["duration_s"] == pytest.approx(38080 / 8000, abs=0.01) and doc["sample_rate"] == 8000

    # Adaptive scaling reacts within one run: 1 worker at start, the second added under backlog.
    events = list(env_db(cli_env)["scaling_events"].find({"run_id": first["run_id"]}).sort("time", 1))
    assert [(e["workers_before"], e["workers_after"]) for e in events][:2] == [(0, 1), (1, 2)], events
    assert events[1]["reason"] == "worker added" and events[1]["backlog"] > 0
    assert first["workers_max_seen"] == 2
    # The CLI's own cluster reaches the flow by address, as an existing one would: it keeps voxflow's bounds.
    run = env_db(cli_env)["runs"].find_one({"run_id": first["run_id"]}, {"_id": 0})
    assert (run["workers_min"], run["workers_max"]) == (1, 2), run

    # The shipped baseline was trained on these very recordings: nothing shifted, every scored file counted.
    drift = first["input_drift"]
    assert (drift["n"], drift["training_n"], drift["shifted_count"], drift["too_few"]) == (first["scored"], 208, 0, False), drift
    assert drift["checked"] == len(FEATURE_NAMES) and all(s["psi"] < 0.05 for s in drift["largest"]), drift
    assert run["input_drift"] == drift, run

    again = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], cli_env))
    assert again["scored"] == 0 and again["skipped"] == first["scored"] and again["input_drift"] is None
    assert predictions.count_documents({}) == first["scored"]

    results = last_json(run_cli(["results", "--run", first["run_id"], "--limit", "500", "--json"], cli_env))
    assert len(results) == first["scored"]
    flagged = last_json(run_cli(["results", "--min-score", "0.5", "--limit", "500", "--json"], cli_env))
    assert all(r["score"] >= 0.5 for r in flagged) and len(flagged) == predictions.count_documents({"score": {"$gte": 0.5}})

    # An analyst takes the run away whole, as CSV or Parquet: every prediction, flattened, none listed twice.
    for name in ("run.csv", "run.parquet"):
        done = run_cli(["results", "--run", first["run_id"], "-o", str(tmp_path / name)], cli_env)
        assert done.stdout.strip().splitlines()[-1] == f"wrote {first['scored']} predictions to {tmp_path / name}"
        table = (pacsv.read_csv if name.endswith(".csv") else pq.read_table)(str(tmp_path / name)).to_pylist()
        assert {row["audio_sha256"]: row["score"] for row in table} == {r["audio_sha256"]: r["score"] for r in results}
        assert len(table) == len(results) and all(len(json.loads(row["top_factors"])) == 3 for row in table)
        assert {row["subject_id"] for row in table} == {r["subject_id"] for r in results}


def test_recordings_unlike_the_training_data_are_scored_and_said_to_have_shifted(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Synthetic vowels at 8-48 kHz against a model trained on VOICED's 8 kHz clinic recordings.
    manifest = write_demo_corpus(tmp_path / "corpus", n=36)
    command = run_cli(["analyze", str(manifest)], cli_env)
    assert command.returncode == 0, command.stderr[-3000:]
    run = env_db(cli_env)["runs"].find_one({}, {"_id": 0})
    drift = run["input_drift"]
    assert run["scored"] == drift["n"] == 36 and drift["shifted_count"] >= 10 and not drift["too_few"], drift
    top = drift["shifted"][0]
    assert top["psi"] >= 0.25 and top["p_value"] < 0.01 / drift["checked"] and top["share"] > top["training_share"], top
    # The features the model reads come first: those shifts touch its scores.
    reads = drift["reads"]
    shown = [s["feature"] in reads for s in drift["shifted"]]  # the first 5
    assert len(reads) == 8 and drift["shifted_read"] >= 1 and shown == sorted(shown, reverse=True) and sum(shown) == min(drift["shifted_read"], 5), drift
    assert drift["brief"] == f"{drift['shifted_count']}/{drift['checked']} shifted" and drift["summary"].startswith(
        f"{drift['shifted_count']} of {drift['checked']} features shifted from the training data of {run['model_version']}, "
        f"{drift['shifted_read']} of the 8 it reads (36 files): {top['feature']} "
    ), drift["summary"]
    # Said as a warning in the run log, and in the command's summary and `voxflow runs`, in a line each.
    warning = next(line for line in command.stderr.splitlines() if "Input drift:" in line)
    assert " WARNING " in warning and drift["summary"] in warning and "no evidence" in warning, warning
    assert re.search(rf"^input_drift +{re.escape(drift['summary'])}$", command.stdout, re.M), command.stdout
    listing = run_cli(["runs", "--limit", "1"], cli_env).stdout
    assert "input_drift" in listing.splitlines()[0] and drift["brief"] in listing, listing
    # A Prefect event about the model, which an automation can act on (notify someone).
    [event] = shift_events(cli_env, run["run_id"], at_least=1)
    assert event["resource"]["prefect.resource.id"] == f"voxflow.model.{run['model_version']}"
    assert (event["payload"]["run_id"], event["payload"]["shifted_count"]) == (run["run_id"], drift["shifted_count"]), event["payload"]
    # Over the last day, every run of the champion: here the one run, the same comparison, every shift listed.
    window = last_json(run_cli(["drift", "--json"], cli_env))
    assert (window["scored"], window["n"], window["shifted_count"], window["summary"]) == (36, 36, drift["shifted_count"], drift["summary"]), window
    assert len(window["shifted"]) == drift["shifted_count"] > 5
    text = run_cli(["drift", "--hours", "2"], cli_env).stdout.splitlines()
    assert text[0].startswith(f"36 predictions of {run['model_version']} since ") and text[1] == drift["summary"], text
    assert text[2] == "shifted features, those the model reads first:" and text[3].split() == ["feature", "read", "psi", "p_value", "bin", "share", "training_share"], text
    assert text[4].split()[:2] == [top["feature"], "yes"] and text[-1] == f"... and {drift['shifted_count'] - 20} more (--json lists every one)", text


def _bad_corpus(root: Path) -> tuple[int, int]:
    """Write good and broken files; return (good, bad) counts. One non-audio file is to be ignored."""
    rate = 16_000
    good = [
        ("ünïcødé and spaces/clip one.wav", synth_vowel(f0_hz=120, duration_s=2.0, sr=rate, seed=1), rate),
        ("stereo-44k.flac", np.stack([synth_vowel(f0_hz=200, duration_s=2.0, sr=44_100, seed=2)] * 2, axis=1), 44_100),
        ("speech.ogg", synth_vowel(f0_hz=150, duration_s=3.0, sr=22_050, seed=3), 22_050),
        # No voice at all: scored (flagged unvoiced), its missing F0/jitter explained as None; NaN failed the whole batch.
        ("noise.wav", 0.1 * np.random.default_rng(1).standard_normal(32_000), 16_000),
    ]
    for name, y, sr in good:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, y, sr)
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "random.wav").write_bytes(np.random.default_rng(0).bytes(8000))
    (bad / "text.flac").write_text("I am a text file\n" * 20)
    sf.write(bad / "truncated.wav", synth_vowel(f0_hz=110, duration_s=2.0, sr=rate, seed=4), rate)
    (bad / "truncated.wav").write_bytes((bad / "truncated.wav").read_bytes()[:30])
    nan = synth_vowel(f0_hz=130, duration_s=1.0, sr=rate, seed=5)
    nan[100:200] = np.nan
    sf.write(bad / "nan.wav", nan, rate, subtype="FLOAT")
    sf.write(bad / "silence.wav", np.zeros(rate * 2, dtype=np.float32), rate)
    sf.write(bad / "short.wav", synth_vowel(f0_hz=120, duration_s=0.05, sr=rate, seed=6), rate)
    sf.write(bad / "long.wav", synth_vowel(f0_hz=120, duration_s=12.0, sr=8_000, seed=7), 8_000)
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(rate * 2) / rate)).astype(np.float32)
    sf.write(bad / "clipped.wav", square, rate)
    (bad / "lying.hea").write_text("lying 1 8000 999999\nlying.dat 16 200/mV 16 0 0 0 0 voice\n")
    (bad / "lying.dat").write_bytes(np.zeros(100, dtype="<i2").tobytes())
    (bad / "dangling.wav").symlink_to(bad / "nowhere.wav")
    (bad / "loop1.wav").symlink_to(bad / "loop2.wav")
    (bad / "loop2.wav").symlink_to(bad / "loop1.wav")
    (root / "notes.txt").write_text("not audio: ignored and counted")
    return len(good), 13


def test_bad_input_is_quarantined_with_reasons_and_the_batch_goes_on(cli_env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    n_good, n_bad = _bad_corpus(corpus)
    env = {**cli_env, "VOXFLOW_MAX_DURATION_S": "10", "PREFECT_LOGGING_LEVEL": "INFO"}
    # Given relative to the command's folder, the source is recorded absolute: it names the files from anywhere.
    run = run_cli(["analyze", os.path.relpath(corpus, REPO), "--json"], env)
    summary = last_json(run)
    assert (summary["scored"], summary["quarantined"], summary["ignored"]) == (n_good, n_bad, 1), summary
    # The count the log starts with is the run's "seen" (it had been the files left to analyse, beside "seen" in the summary).
    assert re.search(rf"Found {summary['seen']} audio files in \S+: \d+ to analyse, \d+ rejected, 0 of content listed already; 1 other files ignored", run.stderr), run.stderr[-3000:]
    # Progress as chunks complete, up to every file sent to the workers.
    done, total, percent = re.findall(r"(\d+)/(\d+) files \((\d+)%\) · [\d.]+ files/s · ETA \d+ s", run.stderr)[-1]
    assert done == total and percent == "100" and int(total) >= n_good, run.stderr[-3000:]
    assert summary["source"] == env_db(env)["runs"].find_one({"run_id": summary["run_id"]})["source"] == str(corpus)
    quarantined = last_json(run_cli(["quarantine", "--run", summary["run_id"], "--json"], env))
    reasons = {Path(q["path"]).name: (q["stage"], q["reason"]) for q in quarantined}
    assert set(reasons) == {p.name for p in (corpus / "bad").iterdir() if p.suffix != ".dat"}
    assert reasons["dangling.wav"][0] == "discover" and "broken symlink" in reasons["dangling.wav"][1]
    assert "symlink loop" in reasons["loop1.wav"][1]
    assert reasons["silence.wav"][0] == "quality" and "silence" in reasons["silence.wav"][1]
    assert reasons["nan.wav"][0] == "quality" and "non-finite" in reasons["nan.wav"][1].lower()
    assert "too long" in reasons["long.wav"][1] and "too short" in reasons["short.wav"][1]
    assert "clipped" in reasons["clipped.wav"][1]
    assert reasons["empty.wav"][0] == "decode" and "empty" in reasons["empty.wav"][1]
    assert reasons["lying.hea"][0] == "decode"
    for stage, reason in reasons.values():
        assert len(reason) > 10 and "Traceback" not in reason
    run_cli(["quarantine", "--run", summary["run_id"], "--output", str(tmp_path / "quarantined.csv")], env)
    exported = pacsv.read_csv(str(tmp_path / "quarantined.csv")).to_pylist()
    assert {Path(row["path"]).name: (row["stage"], row["reason"]) for row in exported} == reasons and len(exported) == len(quarantined)


def test_empty_files_and_copies_of_a_bad_file_are_each_quarantined_with_its_reason(cli_env: dict[str, str], tmp_path: Path) -> None:
    # 0-byte files were one file analysed and the rest duplicates of it, as was a copy of a silent file: bad files left out
    # of the run's and the dashboard's quarantine counts.
    zero = tmp_path / "zero"
    zero.mkdir()
    for name in ("a.wav", "b.wav", "c.flac"):
        (zero / name).write_bytes(b"")
    sf.write(zero / "s1.wav", np.zeros(32_000, dtype=np.float32), 16_000)
    shutil.copy(zero / "s1.wav", zero / "s2.wav")
    for _ in range(2):  # a re-run: nothing was scored, so each file is analysed and quarantined again
        summary = last_json(run_cli(["analyze", str(zero), "--json"], cli_env))
        counts = {key: summary[key] for key in ("seen", "scored", "skipped", "duplicates", "quarantined")}
        assert counts == {"seen": 5, "scored": 0, "skipped": 0, "duplicates": 0, "quarantined": 5}, summary

    records = last_json(run_cli(["quarantine", "--run", summary["run_id"], "--json"], cli_env))
    reasons = {Path(r["path"]).name: (r["stage"], r["reason"]) for r in records}
    silent = reasons["s1.wav"]
    assert silent[0] == "quality" and silent[1].startswith("silence"), silent
    assert reasons == {**dict.fromkeys(("a.wav", "b.wav", "c.flac"), ("decode", "empty file (0 bytes)")),
                       "s1.wav": silent, "s2.wav": ("quality", f"{silent[1]} (same content as {zero / 's1.wav'})")}
    assert sum(doc.get("quarantined", 0) for doc in env_db(cli_env)["prediction_counts"].find()) == 10  # both runs' bad files


def test_every_quarantine_record_of_a_manifest_keeps_its_subject_id_and_label(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Only duplicates kept them: the subjects whose recordings need redoing were lost from the export.
    sf.write(tmp_path / "short.wav", synth_vowel(f0_hz=120, duration_s=0.2, sr=16_000, seed=1), 16_000)
    shutil.copy(tmp_path / "short.wav", tmp_path / "short_again.wav")
    (tmp_path / "notes.wav").write_text("a note typed into the wrong file, no audio in it at all")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,subject_id,label\nmissing.wav,S1,healthy\nshort.wav,S2,pathological\nnotes.wav,S3,healthy\n"
                        ",S4,pathological\nshort_again.wav,S5,healthy\n")
    summary = last_json(run_cli(["analyze", str(manifest), "--json"], cli_env))
    assert [summary[key] for key in ("seen", "scored", "duplicates", "quarantined")] == [5, 0, 0, 5], summary
    run_cli(["quarantine", "--run", summary["run_id"], "-o", str(tmp_path / "q.csv")], cli_env)
    exported = pacsv.read_csv(str(tmp_path / "q.csv")).to_pylist()
    assert sorted((row["subject_id"], row["reference_label"], row["stage"]) for row in exported) == [
        ("S1", "healthy", "discover"), ("S2", "pathological", "quality"), ("S3", "healthy", "decode"),
        ("S4", "pathological", "discover"), ("S5", "healthy", "quality"),
    ]


def test_a_manifest_naming_one_recording_twice_says_what_it_did_not_keep(cli_env: dict[str, str], tmp_path: Path) -> None:
    m1, copy, other = tmp_path / "m1.wav", tmp_path / "m1_copy.wav", tmp_path / "m2.wav"
    sf.write(m1, synth_vowel(f0_hz=120, duration_s=2.0, sr=16_000, seed=1), 16_000)
    shutil.copy(m1, copy)
    sf.write(other, synth_vowel(f0_hz=180, duration_s=2.0, sr=16_000, seed=2), 16_000)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,subject_id,label\nm1.wav,S1,healthy\nm1_copy.wav,S2,pathological\nm2.wav,S3,healthy\n")
    done = run_cli(["analyze", str(manifest), "--json"], cli_env)
    summary = last_json(done)
    assert [summary[key] for key in ("seen", "scored", "skipped", "duplicates", "quarantined")] == [3, 2, 0, 1, 0], summary

    reason = (f"same content as {m1}, with another subject_id (S2 vs S1) and label (pathological vs healthy): "
              "analysed once, under that name; check the manifest")
    assert f"{copy}: {reason}" in " ".join(done.stderr.split())  # a warning, whatever the console's line width
    db = env_db(cli_env)
    record = db.quarantine.find_one({"run_id": summary["run_id"]}, {"_id": 0, "created_at": 0})
    sha256 = db.predictions.find_one({"path": str(m1)})["audio_sha256"]
    assert record == {"path": str(copy), "audio_sha256": sha256, "subject_id": "S2", "reference_label": "pathological",
                      "stage": "duplicate", "reason": reason, "run_id": summary["run_id"]}
    assert (db.predictions.find_one({"audio_sha256": sha256})["subject_id"], db.quarantine.count_documents({})) == ("S1", 1)
    run_cli(["quarantine", "--run", summary["run_id"], "-o", str(tmp_path / "repeats.parquet")], cli_env)
    [exported] = pq.read_table(str(tmp_path / "repeats.parquet")).to_pylist()
    assert (exported["path"], exported["subject_id"], exported["reference_label"]) == (str(copy), "S2", "pathological")

    # A re-run scores nothing again and names the repeat again, in its own run's records.
    again = last_json(run_cli(["analyze", str(manifest), "--json"], cli_env))
    assert [again[key] for key in ("seen", "scored", "skipped", "duplicates", "quarantined")] == [3, 0, 2, 1, 0], again
    assert db.quarantine.count_documents({"run_id": again["run_id"], "path": str(copy), "stage": "duplicate"}) == 1
    assert db.predictions.count_documents({}) == 2 and repeated_hashes(db.predictions) == []


def test_a_recording_scored_before_and_listed_otherwise_is_recorded_as_its_duplicate(cli_env: dict[str, str], tmp_path: Path) -> None:
    m1 = tmp_path / "m1.wav"
    sf.write(m1, synth_vowel(f0_hz=140, duration_s=2.0, sr=16_000, seed=3), 16_000)
    first = tmp_path / "first.csv"
    first.write_text("path,subject_id,label\nm1.wav,S1,healthy\n")
    scored = last_json(run_cli(["analyze", str(first), "--json"], cli_env))
    assert scored["scored"] == 1, scored
    db = env_db(cli_env)

    def outcome(source: Path) -> tuple[list[int], list[tuple[str, str, str | None, str | None]]]:
        summary = last_json(run_cli(["analyze", str(source), "--json"], cli_env))
        records = db.quarantine.find({"run_id": summary["run_id"]})
        return [summary[key] for key in ("seen", "scored", "skipped", "duplicates")], [(r["path"], r["reason"], r["subject_id"], r["reference_label"]) for r in records]

    # The same recording, copied for another subject: its new name, subject and label are kept in this run's records.
    (tmp_path / "cohort2").mkdir()
    p42 = tmp_path / "cohort2" / "p42.wav"
    shutil.copy(m1, p42)
    second = tmp_path / "cohort2" / "second.csv"
    second.write_text("path,subject_id,label\np42.wav,P42,pathological\n")
    run = scored["run_id"][:8]
    assert outcome(second) == ([1, 0, 0, 1], [(str(p42), f"same content as {m1}, scored in run {run}, with another subject_id (P42 vs S1) and "
                                                "label (pathological vs healthy): not scored again; check the manifest", "P42", "pathological")])
    # The same name with a corrected label: said, not silently dropped; the prediction keeps what it was scored with.
    corrected = tmp_path / "corrected.csv"
    corrected.write_text("path,subject_id,label\nm1.wav,S1,pathological\n")
    assert outcome(corrected) == ([1, 0, 0, 1], [(str(m1), f"already scored in run {run}, with another label (pathological vs healthy): its prediction "
                                                   "keeps the ones it was scored with; check the manifest", "S1", "pathological")])
    # The same listing again, or the file alone (no subject or label given): a re-run, skipped with no record.
    assert outcome(first) == ([1, 0, 1, 0], [])
    assert outcome(m1) == ([1, 0, 1, 0], [])
    # The stored file listed as then beside a copy listed first: the file is skipped, the copy named as its duplicate (the
    # batch had kept the copy, named the file a duplicate of it, then the copy one of the file: neither analysed, both named).
    shutil.copy(m1, tmp_path / "a_copy.wav")
    both = tmp_path / "both.csv"
    both.write_text("path,subject_id,label\na_copy.wav,S1,healthy\nm1.wav,S1,healthy\n")
    assert outcome(both) == ([2, 0, 1, 1], [(str(tmp_path / "a_copy.wav"), f"same content as {m1}, scored in run {run}: not scored again", "S1", "healthy")])
    assert db.predictions.count_documents({}) == 1 and db.predictions.find_one()["reference_label"] == "healthy"


def test_manifest_labels_are_stored_as_training_reads_them(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Stored as written: reference_label 'Pathological', 'sick', '1' beside the predicted 'pathological'/'healthy'.
    for seed, name in enumerate(("a.wav", "b.wav", "c.wav")):
        sf.write(tmp_path / name, synth_vowel(f0_hz=120 + 20 * seed, duration_s=1.0, sr=16_000, seed=seed), 16_000)
    (tmp_path / "m.csv").write_text("path,label\na.wav,Pathological\nb.wav, 0 \nc.wav,sick\n")
    done = run_cli(["analyze", str(tmp_path / "m.csv"), "--json"], cli_env)
    assert (last_json(done)["scored"], last_json(done)["quarantined"]) == (3, 0)
    unread = f"{tmp_path / 'm.csv'} (row 3): label 'sick' is not 0/1 nor pathological/healthy: its file is scored without a reference label"
    assert unread in " ".join(done.stderr.split())
    stored = {Path(doc["path"]).name: doc["reference_label"] for doc in env_db(cli_env)["predictions"].find()}
    assert stored == {"a.wav": "pathological", "b.wav": "healthy", "c.wav": None}
    # The same listing written otherwise is a re-run: skipped, no "another label" duplicate.
    (tmp_path / "lower.csv").write_text("path,label\na.wav,pathological\nb.wav,healthy\n")
    again = last_json(run_cli(["analyze", str(tmp_path / "lower.csv"), "--json"], cli_env))
    assert (again["skipped"], again["duplicates"]) == (2, 0), again


def test_missing_source_and_bad_setting_give_one_clear_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = run_cli(["analyze", str(tmp_path / "nowhere")], cli_env, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip() == f"voxflow: error: source not found: {tmp_path / 'nowhere'}"
    bad = run_cli(["analyze", str(tmp_path)], {**cli_env, "VOXFLOW_CHUNK_SIZE": "0"}, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("voxflow: error: bad setting VOXFLOW_CHUNK_SIZE")
    assert "Traceback" not in missing.stderr + bad.stderr
    (tmp_path / "wrong.csv").write_text("file,label\nx.wav,1\n")
    wrong = run_cli(["analyze", str(tmp_path / "wrong.csv")], cli_env, timeout=60)  # found before any flow run starts
    assert wrong.returncode == 2 and wrong.stderr.strip() == f"voxflow: error: manifest {tmp_path / 'wrong.csv'} has no 'path' column (columns: file, label)"


def test_a_folder_without_audio_says_so(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    (tmp_path / "voice memo.m4a").write_bytes(b"\0\0\0\x20ftypM4A ")
    summary = run_cli(["analyze", str(tmp_path), "--json"], cli_env)
    assert (last_json(summary)["seen"], last_json(summary)["ignored"]) == (0, 2)
    assert f"No audio files in {tmp_path}: nothing to analyse" in summary.stderr
    # Named, where a run had only counted it among the non-audio files ignored.
    warned = "1 audio file in formats voxflow cannot read (.m4a 1): convert to wav or flac: voice memo.m4a"
    assert warned in " ".join(summary.stderr.split())  # a warning, whatever the console's line width


def test_killed_run_resumes_without_duplicates(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8"}
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    predictions = env_db(env)["predictions"]
    wait_for_predictions(env, proc, 40)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow process and its Dask workers, mid-run
    proc.wait()
    stored_before = predictions.count_documents({})
    assert 40 <= stored_before < 208

    resumed = last_json(run_cli(["analyze", str(voiced_manifest), "--json"], env))
    total = predictions.count_documents({})
    assert resumed["skipped"] == stored_before and resumed["scored"] == total - stored_before
    assert resumed["scored"] + resumed["skipped"] + resumed["quarantined"] == 208
    assert repeated_hashes(predictions) == []


def test_an_interrupted_run_keeps_what_it_knew(cli_env: dict[str, str], voiced_manifest: Path) -> None:
    # `voxflow runs` showed "-" for an interrupted run's seen, skipped and wall_s, though discovery had listed every file.
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "8"}
    proc = start_cli(["analyze", str(voiced_manifest), "--json"], env)
    wait_for_predictions(env, proc, 16)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
    assert proc.wait(timeout=120) == 130
    runs = last_json(run_cli(["runs", "--json"], cli_env))
    run = next(run for run in runs if run["status"] == "interrupted")
    assert (run["seen"], run["skipped"], run["duplicates"]) == (208, 0, 0), run
    assert run["scored"] >= 16 and run["scored"] + run["quarantined"] < 208 and run["wall_s"] > 0, run


def test_compacting_the_feature_store_while_a_run_writes_keeps_each_of_its_rows_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    corpus = write_demo_corpus(tmp_path / "corpus", n=48, seed=20261207)
    store = FeatureStore(Path(cli_env["VOXFLOW_HOME"]) / "features")
    proc = start_cli(["analyze", str(corpus), "--json", "--chunk-size", "2"], cli_env)
    merges_while_running = 0
    while proc.poll() is None:
        merged = store.compact(feature_version=FEATURE_VERSION).merged
        merges_while_running += merged > 0 and proc.poll() is None
        time.sleep(0.05)
    summary = last_json(finish(proc))
    assert summary["scored"] == 48 and merges_while_running >= 2, (summary, merges_while_running)
    store.compact(feature_version=FEATURE_VERSION, min_files=1)  # the run's last chunk may be the only one left
    rows = pd.read_parquet(store.root / f"feature_version={FEATURE_VERSION}")
    own = rows[rows["run_id"].astype(str) == summary["run_id"]]
    assert len(own) == 48 and own["audio_sha256"].nunique() == 48  # every chunk the run wrote, none twice
    assert store.inventory(feature_version=FEATURE_VERSION)["chunk_files"] == 0
