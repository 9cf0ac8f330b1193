"""FeatureStore: Parquet chunks partitioned by feature version and run, deduplicated on read."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from store.feature_store import FeatureStore


def chunk(hashes: list[str], value: float) -> pa.Table:
    return pa.table({"audio_sha256": hashes, "f0_mean": [value] * len(hashes), "hnr_db": [value + 1] * len(hashes)})


def test_write_chunk_layout_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    path = store.write_chunk(chunk(["a", "b"], 1.0), feature_version=3, run_id="r1", chunk_id=7)
    assert path == tmp_path / "feature_version=3" / "run_id=r1" / "chunk-00007.parquet"
    assert os.listdir(path.parent) == ["chunk-00007.parquet"]


def test_read_keeps_the_last_written_row_per_hash(tmp_path: Path) -> None:
    # Written in the reverse of their names' order: the write time decides, not the path.
    store = FeatureStore(tmp_path)
    first = store.write_chunk(chunk(["b", "c"], 2.0), feature_version=1, run_id="r2", chunk_id=0)
    last = store.write_chunk(chunk(["a", "b"], 1.0), feature_version=1, run_id="r1", chunk_id=0)
    written = first.stat().st_mtime_ns + 1_000_000_000  # apart by more than the file system's clock tick
    os.utime(last, ns=(written, written))
    store.write_chunk(chunk(["z"], 9.0), feature_version=2, run_id="r2", chunk_id=1)
    frame = store.read(feature_version=1)
    assert dict(zip(frame["audio_sha256"], frame["f0_mean"])) == {"a": 1.0, "b": 1.0, "c": 2.0}
    assert list(store.read(feature_version=1, columns=["hnr_db"]).columns) == ["hnr_db"]
    assert store.read(feature_version=2)["audio_sha256"].tolist() == ["z"]


def test_read_of_an_unwritten_version_is_empty(tmp_path: Path) -> None:
    frame = FeatureStore(tmp_path / "nothing-yet").read(feature_version=5, columns=["audio_sha256", "f0_mean"])
    assert frame.empty and list(frame.columns) == ["audio_sha256", "f0_mean"]


def test_run_id_must_name_one_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="partition"):
        FeatureStore(tmp_path).write_chunk(chunk(["a"], 1.0), feature_version=1, run_id="../escape", chunk_id=0)
    with pytest.raises(ValueError, match="partition"):
        FeatureStore(tmp_path).new_chunk_id("../escape")


def test_new_chunk_ids_never_repeat_within_a_run(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    assert [store.new_chunk_id("r1") for _ in range(3)] == [0, 1, 2]  # nothing written yet: handed out ids count too
    assert store.new_chunk_id("r2") == 0
    store.write_chunk(chunk(["a"], 1.0), feature_version=3, run_id="r3", chunk_id=11)
    assert FeatureStore(tmp_path).new_chunk_id("r3") == 12  # a run resumed by another process continues after its files


def test_an_unreadable_chunk_is_skipped_with_a_warning_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    store.write_chunk(chunk(["a", "b"], 1.0), feature_version=3, run_id="r1", chunk_id=0)
    broken = store.write_chunk(chunk(["b", "c"], 2.0), feature_version=3, run_id="r2", chunk_id=0)
    broken.write_bytes(b"not parquet at all")
    with caplog.at_level(logging.WARNING, logger="store.feature_store"):
        frame = store.read(feature_version=3, columns=["audio_sha256", "f0_mean"])
    assert dict(zip(frame["audio_sha256"], frame["f0_mean"])) == {"a": 1.0, "b": 1.0}  # c reads as missing
    assert str(broken) in caplog.text and "skipped" in caplog.text
    store.write_chunk(chunk(["a"], 1.0).drop_columns(["f0_mean"]), feature_version=4, run_id="r1", chunk_id=0)
    assert store.read(feature_version=4, columns=["audio_sha256", "f0_mean"]).empty  # a chunk lacking a column: skipped too
