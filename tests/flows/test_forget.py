"""The forget-recordings flow: an erasure requested through Prefect waits out what holds its locks, and is never dropped."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from pymongo.database import Database

from flows.forget import forget_recordings
from store.cache import connect_redis
from store.locks import BACKUP_LOCK, hold_lock
from store.mongo import ResultStore, connect_mongo
from store.queue import FileQueue, QueueItem
from voxflow import services
from voxflow.errors import DatabaseError, VoxflowError
from voxflow.settings import Settings, get_settings


def _withdrawn_subjects_data(db: Database, subject: str) -> None:
    """A prediction and a label of ``subject``'s recording, and its next one waiting in the queue."""
    ResultStore(db).insert_predictions([{
        "audio_sha256": "a" * 64, "model_version": "m1", "path": "/c/a.wav", "subject_id": subject, "score": 0.7, "threshold": 0.5,
        "created_at": datetime.now(timezone.utc),
    }])
    db["labels"].insert_one({"audio_sha256": "a" * 64, "label": "pathological", "subject_id": subject, "path": "/c/a.wav"})


def test_a_run_refused_while_a_backup_holds_its_lock_tries_again_and_forgets(in_process: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXFLOW_FORGET_RETRY_DELAY_S", "1")
    get_settings.cache_clear()
    subject = f"s-{uuid.uuid4().hex[:8]}"
    client = connect_redis(services.redis_url(in_process))
    FileQueue(client).enqueue([QueueItem("/c/b.wav", subject_id=subject)])
    with connect_mongo(services.mongo_uri(in_process)) as mongo:
        db = mongo[in_process.mongo_db]
        _withdrawn_subjects_data(db, subject)
        held, release = threading.Event(), threading.Event()

        def a_backup_for_a_moment() -> None:
            with hold_lock(client, BACKUP_LOCK, ttl_s=30):
                held.set()
                release.wait(10)

        backup = threading.Thread(target=a_backup_for_a_moment)
        backup.start()
        held.wait(5)
        threading.Timer(1.5, release.set).start()
        started = time.monotonic()
        report = forget_recordings(subjects=[subject])
        backup.join()
        assert time.monotonic() - started >= 1.0  # it waited for the backup
        assert (report["recordings"], report["predictions"], report["labels"], report["queued"], report["dry_run"]) == (1, 1, 1, 1, False)
        assert db["predictions"].count_documents({}) == db["labels"].count_documents({}) == 0
    assert FileQueue(client).forget(hashes=set(), paths=set(), subjects={subject}) == set()


def test_what_no_wait_can_mend_fails_the_run_at_once(in_process: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VoxflowError, match=r"^--sha256 'abc' is not a sha256"):
        forget_recordings(sha256=["abc"])
    with pytest.raises(VoxflowError, match=r"^name the recordings to forget"):
        forget_recordings()
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setenv("VOXFLOW_MONGO_URI", f"mongodb://127.0.0.1:{port}/")  # nothing listens there
    get_settings.cache_clear()
    started = time.monotonic()
    with pytest.raises(DatabaseError, match=r"^MongoDB unreachable \(database "):
        forget_recordings(subjects=["s1"])
    assert time.monotonic() - started < 60  # failed, not tried again 12 times 300 s apart
