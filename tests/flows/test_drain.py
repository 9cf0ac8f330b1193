"""Continuous intake end to end: the real CLI enqueues, ``voxflow drain`` scores through Prefect, Dask, Redis, MongoDB."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import redis
import soundfile as sf

from features.synth import synth_vowel
from store.latency import LATENCY_STREAM
from store.locks import hold_lock, wanting
from store.queue import QUEUE_STREAM, FileQueue, QueueItem
from tests.flows.conftest import repeated_hashes
from tests.helpers import ended_process
from tests.voxflow_cli import env_db, finish, last_json, prefect_api_call, run_cli, start_cli, wait_for_predictions

pytestmark = pytest.mark.slow


def _redis(env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(env["VOXFLOW_REDIS_URL"], decode_responses=True)


def _clips(folder: Path, n: int, *, seed: int = 0, f0_hz: float = 90) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, synth_vowel(f0_hz=f0_hz + 3 * i, duration_s=1.5, sr=16_000, seed=seed + i), 16_000)
        paths.append(path)
    return paths


def _acked_ids(env: dict[str, str]) -> collections.Counter:
    """How many latency samples (one per acknowledgement) each queue entry got."""
    return collections.Counter(fields["entry_id"] for _, fields in _redis(env).xrange(LATENCY_STREAM))


def test_drain_scores_each_file_once_and_acks_every_entry(cli_env: dict[str, str], tmp_path: Path) -> None:
    clips = _clips(tmp_path / "clips", 6)
    copy = tmp_path / "copy-of-clip0.wav"
    shutil.copy(clips[0], copy)
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(32_000, dtype=np.float32), 16_000)
    silence_copy = tmp_path / "silence-copy.wav"
    shutil.copy(silence, silence_copy)
    gone = tmp_path / "gone.wav"
    shutil.copy(clips[1], gone)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,subject_id\nclips/clip002.wav,s2\n")

    missing = run_cli(["enqueue", str(tmp_path / "nowhere.wav")], cli_env, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip() == f"voxflow: error: source not found: {tmp_path / 'nowhere.wav'}"

    added = last_json(run_cli(["enqueue", str(tmp_path / "clips"), str(clips[3]), str(copy), str(silence), str(silence_copy), str(gone), str(manifest), "--json"], cli_env))
    assert added == {"enqueued": 12, "rejected": [], "ignored": 0, "depth": 12}
    gone.unlink()  # enqueued, then deleted before the drain: quarantined at discover
    entry_ids = {entry_id for entry_id, _ in _redis(cli_env).xrange(QUEUE_STREAM)}
    before = last_json(run_cli(["queue", "status", "--json"], cli_env))
    assert before["depth"] == 12 and before["pending"] == 0 and before["oldest_pending_age_s"] >= 0

    summary = last_json(run_cli(["drain", "--json"], cli_env))
    # 6 distinct clips scored; clip3 twice, clip2 via the manifest and the copy are duplicates, each named; silence, its copy and gone quarantined.
    assert (summary["acked"], summary["scored"], summary["duplicates"], summary["quarantined"]) == (12, 6, 3, 3), summary
    assert summary["depth"] == 0 and summary["latency_p95_s"] >= summary["latency_p50_s"] > 0
    # Files decoded and analysed, as analyze counts them: the 6 clips and the silence, not gone.wav nor the duplicates.
    assert summary["clips_per_s"] == pytest.approx(7 / summary["wall_s"], rel=0.01)

    db = env_db(cli_env)
    assert db.predictions.count_documents({}) == 6
    records = {Path(q["path"]).name: (q["stage"], q["reason"]) for q in db.quarantine.find({"run_id": summary["run_id"]})}
    assert {name: stage for name, (stage, _) in records.items()} == {
        "silence.wav": "quality", "silence-copy.wav": "quality", "gone.wav": "discover",
        "copy-of-clip0.wav": "duplicate", "clip002.wav": "duplicate", "clip003.wav": "duplicate"}
    assert records["silence-copy.wav"][1] == f"{records['silence.wav'][1]} (same content as {silence})"  # a bad file too, not a duplicate
    assert {name: reason for name, (stage, reason) in records.items() if stage == "duplicate"} == {
        "copy-of-clip0.wav": f"same content as {clips[0]}: analysed once, under that name",
        "clip003.wav": "the same file listed again: analysed once",
        "clip002.wav": "the same file listed again, with another subject_id (s2 vs missing): analysed once; check the manifest",
    }
    assert _acked_ids(cli_env) == collections.Counter({entry_id: 1 for entry_id in entry_ids})

    after = last_json(run_cli(["queue", "status", "--json"], cli_env))
    assert (after["depth"], after["pending"], after["consumers"]) == (0, 0, [])
    assert after["latency_last_hour"]["count"] == 12

    # Files again: already stored, acknowledged without scoring; the copy, stored under clip0's name, is named as its duplicate.
    last_json(run_cli(["enqueue", *map(str, clips[1:]), str(copy), "--json"], cli_env))
    again = last_json(run_cli(["drain", "--json"], cli_env))
    assert (again["acked"], again["scored"], again["skipped"], again["duplicates"], again["clips_per_s"]) == (6, 0, 5, 1, 0.0), again
    assert db.predictions.count_documents({}) == 6
    [repeat] = db.quarantine.find({"run_id": again["run_id"]})
    assert (repeat["path"], repeat["stage"]) == (str(copy), "duplicate")
    assert repeat["reason"] == f"same content as {clips[0]}, scored in run {summary['run_id'][:8]}: not scored again"

    # `voxflow runs` shows a drain's own counts as whole numbers (they were NaN or 6.0 beside an analyze's).
    listing = run_cli(["runs", "--limit", "2"], cli_env).stdout
    header, *rows = listing.splitlines()
    date, time_of_day, *cells = next(line for line in rows if summary["run_id"] in line).split()  # started_at: date and time
    shown = dict(zip(header.split()[1:], cells))
    assert {k: shown[k] for k in ("acked", "scored", "skipped", "duplicates", "quarantined")} == {
        k: str(summary[k]) for k in ("acked", "scored", "skipped", "duplicates", "quarantined")}, listing


def test_killed_drain_loses_nothing_and_scores_nothing_twice(cli_env: dict[str, str], tmp_path: Path) -> None:
    n = 96
    _clips(tmp_path / "clips", n)
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "4", "VOXFLOW_QUEUE_BATCH_SIZE": "32"}
    assert last_json(run_cli(["enqueue", str(tmp_path / "clips"), "--json"], env))["enqueued"] == n
    entry_ids = {entry_id for entry_id, _ in _redis(env).xrange(QUEUE_STREAM)}

    proc = start_cli(["drain", "--json"], env)
    predictions = env_db(env).predictions
    wait_for_predictions(env, proc, 12, timeout_s=180)
    os.killpg(proc.pid, signal.SIGKILL)  # the flow process and its Dask workers, mid-batch
    proc.wait()
    stored_before = predictions.count_documents({})
    assert 12 <= stored_before < n
    status = last_json(run_cli(["queue", "status", "--json"], env))
    assert status["depth"] == n - sum(_acked_ids(env).values()) and status["pending"] > 0  # the dead consumer holds a batch

    killed = env_db(env).runs.find_one({"status": "running"})
    # At the default claim time (300 s): the dead drain's entries are claimed at once, its process being gone.
    resumed = last_json(run_cli(["drain", "--json"], env))
    assert resumed["depth"] == 0 and resumed["quarantined"] == 0
    # The killed drain's record is closed by the next run, with what it had stored (it said "running" for good).
    closed = env_db(env).runs.find_one({"run_id": killed["run_id"]})
    assert closed["status"] == "crashed" and closed["scored"] == stored_before and "ended before the run finished" in closed["error"]
    assert predictions.count_documents({}) == n and resumed["scored"] == n - stored_before
    assert repeated_hashes(predictions) == []
    assert _acked_ids(env) == collections.Counter({entry_id: 1 for entry_id in entry_ids})
    final = last_json(run_cli(["queue", "status", "--json"], env))
    assert (final["depth"], final["pending"]) == (0, 0)


def test_a_dead_drains_consumer_is_removed_once_its_entries_are_claimed(cli_env: dict[str, str], tmp_path: Path) -> None:
    queue = FileQueue(_redis(cli_env))
    queue.enqueue([QueueItem(str(tmp_path / "gone.wav"))])
    dead = f"{socket.gethostname()}-{ended_process()['pid']}-deadbeef"  # as a killed drain of this host names its consumer
    assert len(queue.read(dead, count=10, claim_idle_s=300)) == 1

    summary = last_json(run_cli(["drain", "--json"], cli_env))
    assert (summary["acked"], summary["quarantined"]) == (1, 1), summary
    # Claimed down to 0 pending, it stayed listed in `voxflow queue status` and on the Queue page.
    assert queue.status().consumers == []


def test_a_drain_of_several_batches_keeps_every_scored_files_features(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "VOXFLOW_CHUNK_SIZE": "2", "VOXFLOW_QUEUE_BATCH_SIZE": "4"}
    _clips(tmp_path / "clips", 10)
    assert last_json(run_cli(["enqueue", str(tmp_path / "clips"), "--json"], env))["enqueued"] == 10

    summary = last_json(run_cli(["drain", "--json"], env))
    assert (summary["batches"], summary["scored"]) == (3, 10), summary
    # The input drift counts every batch's scored files (10 are too few to judge, not too few to count).
    assert (summary["input_drift"]["n"], summary["input_drift"]["too_few"]) == (10, True), summary["input_drift"]
    scored = {doc["audio_sha256"] for doc in env_db(env).predictions.find({"run_id": summary["run_id"]})}
    run_files = (Path(env["VOXFLOW_HOME"]) / "features").glob(f"feature_version=*/run_id={summary['run_id']}/chunk-*.parquet")
    stored = {sha for path in run_files for sha in pq.read_table(path, columns=["audio_sha256"]).column("audio_sha256").to_pylist()}
    assert len(scored) == 10 and stored == scored  # a later batch's chunk files used to replace the earlier batches'


def test_entries_naming_no_usable_file_are_quarantined_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    [clip] = _clips(tmp_path / "clips", 1)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path\n{clip}\nclips/bad\0name.wav\n")
    assert last_json(run_cli(["enqueue", str(manifest), "--json"], cli_env))["enqueued"] == 2
    pathless = _redis(cli_env).xadd(QUEUE_STREAM, {"file": str(clip)})  # another producer's entry, without 'path'

    summary = last_json(run_cli(["drain", "--json"], cli_env))
    assert (summary["acked"], summary["scored"], summary["quarantined"], summary["depth"]) == (3, 1, 2, 0), summary
    reasons = {q["path"]: (q["stage"], q["reason"]) for q in env_db(cli_env).quarantine.find({"run_id": summary["run_id"]})}
    assert reasons == {
        str(tmp_path / "clips" / "bad\0name.wav"): ("discover", "invalid path: embedded null byte"),
        f"queue entry {pathless}": ("discover", "queue entry has no 'path' field (or an empty one): it names no file"),
    }
    assert _acked_ids(cli_env)[pathless] == 1
    again = last_json(run_cli(["drain", "--json"], cli_env))
    assert (again["acked"], again["batches"]) == (0, 0)


def test_an_empty_drain_records_no_run_and_still_closes_a_killed_one(cli_env: dict[str, str]) -> None:
    runs = env_db(cli_env).runs
    runs.insert_one({"run_id": "run-killed", "status": "running", "started_at": datetime.now(timezone.utc), **ended_process()})
    empty = last_json(run_cli(["drain", "--json"], cli_env))
    assert (empty["status"], empty["acked"], empty["batches"]) == ("completed", 0, 0), empty
    # The schedule's drain a minute: recorded, they filled `voxflow runs` and the dashboard's Runs page.
    assert runs.find_one({"run_id": empty["run_id"]}) is None
    assert runs.find_one({"run_id": "run-killed"})["status"] == "crashed"


def test_a_drain_started_while_one_runs_is_skipped(cli_env: dict[str, str]) -> None:
    with hold_lock(_redis(cli_env), "drain", ttl_s=30) as running:
        summary = last_json(run_cli(["drain", "--json"], cli_env))
        assert summary["status"] == "skipped" and running.token in summary["reason"] and summary["acked"] == 0
        assert "forget" not in summary["reason"]
        with wanting(_redis(cli_env), "drain", ttl_s=30):  # a forget holds the drain lock: the scheduled drain says so
            summary = last_json(run_cli(["drain", "--json"], cli_env))
    assert summary["status"] == "skipped" and summary["reason"].endswith(f"held by {running.token}); a forget is running or waiting for it")


def test_a_lingering_drain_pauses_for_a_forget_and_then_drains_on(cli_env: dict[str, str], tmp_path: Path) -> None:
    # A `voxflow drain --linger` held the drain lock while it lingered: every forget was refused until it was stopped.
    clips = _clips(tmp_path / "clips", 4)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,subject_id\n" + "".join(f"{clip},{'withdrawn' if i == 0 else f's{i}'}\n" for i, clip in enumerate(clips)))
    assert last_json(run_cli(["enqueue", str(manifest), "--json"], cli_env))["enqueued"] == 4
    db = env_db(cli_env)
    drain = start_cli(["drain", "--linger", "30", "--json"], {**cli_env, "PREFECT_LOGGING_LEVEL": "INFO"})  # its run log, read below
    try:
        wait_for_predictions(cli_env, drain, 4)
        forgotten = run_cli(["forget", "--subject", "withdrawn", "--json"], cli_env, timeout=120)
        report = last_json(forgotten)
        assert (report["recordings"], report["predictions"], report["closed_runs"]) == (1, 1, []), report
        assert "waiting up to 300 s for the drain holding voxflow:lock:drain" in forgotten.stderr
        assert db.predictions.count_documents({}) == 3 and db.predictions.count_documents({"subject_id": "withdrawn"}) == 0
        # Still lingering, and draining again: files enqueued after the forget are scored by the same drain.
        later = _clips(tmp_path / "later", 2, f0_hz=180)
        assert last_json(run_cli(["enqueue", *map(str, later), "--json"], cli_env))["enqueued"] == 2
        wait_for_predictions(cli_env, drain, 5)
    finally:
        if drain.poll() is None and db.predictions.count_documents({}) < 5:
            os.killpg(drain.pid, signal.SIGTERM)
    done = finish(drain, timeout=120)
    summary = last_json(done)
    # The later files may arrive in one batch or two: xreadgroup returns as soon as one is there.
    assert (summary["status"], summary["acked"], summary["scored"]) == ("completed", 6, 6) and summary["batches"] >= 2, summary
    logged = [line["message"] for line in prefect_api_call(cli_env, "/logs/filter", {"logs": {"flow_run_id": {"any_": [summary["run_id"]]}}})]
    assert "A forget is waiting: this drain pauses until it is done" in logged and "The forget is done: the drain goes on" in logged
    assert db.runs.find_one({"run_id": summary["run_id"]})["status"] == "completed"
