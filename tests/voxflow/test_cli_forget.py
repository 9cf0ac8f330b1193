"""``voxflow forget``: a participant withdraws, and every store lets go of their recordings; what cannot is named."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psutil
import pytest
import redis
import soundfile as sf
from pymongo.database import Database

from features.schema import FEATURE_VERSION
from features.synth import synth_vowel
from models.registry import shipped_bundle
from store.counts import read_rollups, rebuild_counts
from store.feature_store import FeatureStore
from store.locks import BACKUP_LOCK, DRAIN_LOCK, FEATURE_STORE_LOCK, RETRAIN_LOCK, hold_lock, wanted
from store.mongo import ResultStore
from store.latency import LatencyLog, LatencySample
from store.queue import FileQueue, QueueItem
from tests.voxflow_cli import env_db, last_json, run_cli, server_env
from voxflow import services
from voxflow.cli import build_parser, cmd_features, cmd_forget
from voxflow.errors import LockError, VoxflowError
from voxflow.settings import Settings


def _corpus(folder: Path, voiced_dir: Path) -> tuple[Path, dict[str, str]]:
    """A manifest of three synthetic vowels (two of subject s1, one of s2), an empty file of s1, a link of s1 to a file
    that is gone (quarantined with no content hash) and two VOICED records; each readable file's sha256 by its name."""
    folder.mkdir()
    rows, hashes = [], {}
    for seed, (name, subject, label) in enumerate([("a.wav", "s1", "pathological"), ("b.wav", "s1", "healthy"), ("c.wav", "s2", "healthy")]):
        sf.write(folder / name, synth_vowel(f0_hz=120 + 20 * seed, duration_s=2.0, jitter=0.01, hnr_db=20, seed=seed), 16_000)
        rows.append((str(folder / name), subject, label))
    (folder / "empty.wav").write_bytes(b"")
    rows.append((str(folder / "empty.wav"), "s1", "healthy"))
    (folder / "gone.wav").symlink_to(folder / "moved-away.wav")
    for record in ("voice001", "voice002"):
        rows.append((str(voiced_dir / f"{record}.hea"), record, "pathological"))
    manifest = folder / "manifest.csv"
    pd.DataFrame([*rows, (str(folder / "gone.wav"), "s1", "healthy")], columns=["path", "subject_id", "label"]).to_csv(manifest, index=False)
    for path, _, _ in rows:
        named = Path(path)
        parts = [named] + ([named.with_suffix(".dat")] if named.suffix == ".hea" else [])
        hashes[named.name] = hashlib.sha256(b"".join(part.read_bytes() for part in parts)).hexdigest()
    return manifest, hashes


@pytest.mark.slow
def test_a_subject_and_a_file_are_forgotten_by_every_store_what_still_holds_them_is_named_and_a_rerun_scores_them_again(
    test_settings: Settings, prefect_api: str, redis_client: redis.Redis, voiced_dir: Path, tmp_path: Path
) -> None:
    redis_client.flushdb()  # the intake queue is one stream per Redis database (as cli_env does)
    home = tmp_path / "home"  # a feature store and models folder of its own; the session's servers
    env = server_env(
        home=home, redis_url=services.redis_url(test_settings), mongo_uri=services.mongo_uri(test_settings),
        mongo_db=f"t_{uuid.uuid4().hex[:10]}", prefect_api=prefect_api,
    )
    manifest, sha = _corpus(tmp_path / "clips", voiced_dir)
    first = last_json(run_cli(["analyze", str(manifest), "--json"], env))
    assert (first["scored"], first["quarantined"]) == (5, 2)
    assert env_db(env)["quarantine"].count_documents({"audio_sha256": None, "subject_id": "s1"}) == 1  # gone.wav
    assert last_json(run_cli(["labels", "import", str(manifest), "--positive", "pathological", "--json"], env))["imported"] == 6
    backup = last_json(run_cli(["backup", "--json"], env))["backup_id"]
    db = env_db(env)
    cached = f"voxflow:cache:pred:{db.name}:*"
    assert len(redis_client.keys(cached)) == 5

    # a.wav went through the queue too, as a drain settles an entry: its latency sample names its path.
    queue, latency = FileQueue(redis_client), LatencyLog(redis_client, maxlen=1000)
    [entry] = queue.enqueue([QueueItem(str(tmp_path / "clips" / "a.wav"))])
    assert [read.entry_id for read in queue.read("a-drain", count=1, claim_idle_s=60)] == [entry]
    assert queue.ack([entry], log=latency, samples=[LatencySample(entry, str(tmp_path / "clips" / "a.wav"), 0.8, "duplicate")]) == [entry]

    queued = tmp_path / "clips" / "d.wav"  # s1's next recording, waiting in the intake queue
    sf.write(queued, synth_vowel(f0_hz=200, duration_s=2.0, seed=9), 16_000)
    pd.DataFrame({"path": [str(queued), str(tmp_path / "clips" / "c.wav")], "subject_id": ["s1", "s2"]}).to_csv(tmp_path / "queued.csv", index=False)
    assert last_json(run_cli(["enqueue", str(tmp_path / "queued.csv"), "--json"], env))["enqueued"] == 2

    withdrawn = ["forget", "--subject", "s1", "--path", str(voiced_dir / "voice001.hea"), "--subject", "nobody", "--json"]
    dry = last_json(run_cli([*withdrawn, "--dry-run"], env))
    assert db["predictions"].count_documents({}) == 5 and len(redis_client.keys(cached)) == 5  # a dry run removes nothing
    done = last_json(run_cli(withdrawn, env))
    assert done == {**dry, "dry_run": False}
    files = FeatureStore(home / "features").files(feature_version=FEATURE_VERSION)
    assert 1 <= done.pop("feature_files_rewritten") + done.pop("feature_files_removed") <= len(files)  # the run's chunk files
    assert done == {
        "recordings": 4, "queued": 1, "latency_samples": 1, "predictions": 3, "quarantine": 2, "labels": 4, "cached": 3,  # a.wav, b.wav, voice001; empty.wav, gone.wav quarantined
        "feature_rows": 3, "unreadable_feature_files": [],
        "trained_on": [shipped_bundle().card.version],  # the baseline was trained on the VOICED recordings
        "training_unknown": [], "backups": [backup], "unmatched": ["subject nobody"], "dry_run": False, "closed_runs": [],
    }

    kept = {sha["c.wav"], sha["voice002.hea"]}
    assert {doc["audio_sha256"] for doc in db["predictions"].find()} == kept
    assert db["quarantine"].count_documents({}) == 0
    assert {doc["audio_sha256"] for doc in db["labels"].find()} == kept
    assert set(FeatureStore(home / "features").read(feature_version=FEATURE_VERSION)["audio_sha256"]) == kept
    assert {key.split(":")[4] for key in redis_client.keys(cached)} == kept
    assert FileQueue(redis_client).status().depth == 1  # c.wav's entry stays
    assert latency.since(0) == []
    counted = read_rollups(db)
    rebuild_counts(db)
    assert read_rollups(db) == counted  # the dashboard's rollups counted them out

    again = run_cli(["forget", "--subject", "s1"], env)
    assert again.returncode == 0 and again.stderr == ""
    lines = again.stdout.splitlines()
    assert lines[0] == (
        "0 recordings found: removed 0 predictions, 0 quarantine records, 0 labels, 0 feature rows (0 files rewritten, 0 deleted), "
        "0 cached predictions, 0 queued files and 0 latency samples"
    )
    assert lines[1] == "nothing stored matches: subject s1"
    assert lines[2].startswith(f"1 backup in {home / 'backups'} (newest {backup}): each holds the database as it was until retention prunes it")
    assert lines[2].endswith("restoring one erases these recordings again")

    # The erasure is on record, without a path, subject or name; a dry run or a forget that found nothing is too.
    records = last_json(run_cli(["forget", "--list", "--json"], env))
    assert [(r["recordings"], r["predictions"], r["named"]) for r in records] == [
        (0, 0, {"sha256": 0, "paths": 0, "subjects": 1}), (4, 3, {"sha256": 0, "paths": 1, "subjects": 2}),
    ]
    stored = str(list(db["erasures"].find({}, {"_id": 0, "hashes": 0})))
    assert "s1" not in stored and "clips" not in stored and "voice001" not in stored
    assert set(db["erasures"].find_one({"predictions": 3})["hashes"]) == {sha["a.wav"], sha["b.wav"], sha["empty.wav"], sha["voice001.hea"]}
    assert len(db["erasures"].find_one({"predictions": 3})["quarantine_ids"]) == 1  # gone.wav's record, by its _id: no path

    # Restoring the backup taken before brings the database back as it was, but for what was erased: erased again.
    restored = last_json(run_cli(["restore", backup, "--into", db.name, "--drop", "--json"], env))
    assert restored["counts"]["predictions"] == 5 and restored["erased_again"] == {"predictions": 3, "quarantine": 2, "labels": 4}
    assert {doc["audio_sha256"] for doc in db["predictions"].find()} == {doc["audio_sha256"] for doc in db["labels"].find()} == kept
    assert db["quarantine"].count_documents({}) == 0 and db["erasures"].count_documents({}) == 2  # kept, not rolled back

    rerun = last_json(run_cli(["analyze", str(manifest), "--json"], env))
    assert (rerun["scored"], rerun["skipped"], rerun["quarantined"]) == (3, 2, 2)  # nothing stood in for what was forgotten


@pytest.fixture
def settings(home_of_its_own: Settings) -> Settings:
    return home_of_its_own


def forget(settings: Settings, *argv: str) -> int:
    return cmd_forget(build_parser().parse_args(["forget", *argv]), settings)


def test_forget_is_refused_while_a_run_is_storing_results_and_names_it(mongo_db: Database, settings: Settings) -> None:
    me = psutil.Process()
    ResultStore(mongo_db).start_run({"run_id": "run-live", "status": "running", "started_at": datetime.now(timezone.utc), "host": socket.gethostname(), "pid": me.pid, "pid_started": me.create_time()})
    with pytest.raises(LockError, match=r"^not forgetting recordings while runs are running \(1: run-live \(pid \d+ on .*\)\): what a run stores meanwhile could be those recordings again"):
        forget(settings, "--subject", "s1")
    assert forget(settings, "--subject", "s1", "--dry-run") == 0  # a dry run changes nothing, so it goes on


@pytest.mark.parametrize("lock", [BACKUP_LOCK, RETRAIN_LOCK, FEATURE_STORE_LOCK])
def test_forget_is_refused_while_a_backup_a_retrain_or_a_compaction_runs(lock: str, redis_client: redis.Redis, settings: Settings) -> None:
    with hold_lock(redis_client, lock, ttl_s=30):
        with pytest.raises(LockError, match=rf"^another {lock} run is in progress \(lock voxflow:lock:{lock} held by "):
            forget(settings, "--subject", "s1")


def test_forget_is_refused_when_a_drain_does_not_pause_in_time(redis_client: redis.Redis, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # A drain of this voxflow pauses after its batch (tests/flows/test_drain.py); one that does not is waited for, then named.
    caplog.set_level(logging.INFO, logger="tasks.erasure")
    with hold_lock(redis_client, DRAIN_LOCK, ttl_s=30) as drain:
        started = time.monotonic()
        with pytest.raises(LockError, match=(
            rf"^another {DRAIN_LOCK} run is in progress \(lock voxflow:lock:{DRAIN_LOCK} held by {drain.token}\), and it did not pause within "
            r"1 s \(VOXFLOW_FORGET_DRAIN_WAIT_S\): its batch takes longer, or it runs a voxflow that does not pause for a forget$"
        )):
            forget(settings.model_copy(update={"forget_drain_wait_s": 1.0}), "--subject", "s1")
        assert time.monotonic() - started >= 1.0
        assert f"waiting up to 1 s for the drain holding voxflow:lock:drain ({drain.token}) to finish its batch and pause" in caplog.text
        assert wanted(redis_client, DRAIN_LOCK) is False  # the refused forget asks no more


def test_a_compaction_waits_for_no_forget(redis_client: redis.Redis, settings: Settings) -> None:
    with hold_lock(redis_client, FEATURE_STORE_LOCK, ttl_s=30):  # as forget holds it while it rewrites the feature store
        with pytest.raises(LockError, match=rf"^another {FEATURE_STORE_LOCK} run is in progress"):
            cmd_features(build_parser().parse_args(["features", "compact"]), settings)


def test_forget_needs_something_named(settings: Settings) -> None:
    with pytest.raises(VoxflowError, match=r"^name the recordings to forget: --sha256, --path or --subject$"):
        forget(settings)
