"""FeatureStore: Parquet chunks partitioned by feature version and run, deduplicated on read."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import feature_store
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


def _dated(path: Path, seconds: int) -> Path:
    """Give ``path`` a write time ``seconds`` after the epoch's first day (well apart from the file system's clock tick)."""
    ns = (86_400 + seconds) * 1_000_000_000
    os.utime(path, ns=(ns, ns))
    return path


def _store_of_three_runs(root: Path) -> FeatureStore:
    """Chunks of three runs, written in an order their names do not follow; b and c are written twice."""
    store = FeatureStore(root)
    _dated(store.write_chunk(chunk(["a", "b"], 1.0), feature_version=4, run_id="r1", chunk_id=0), 10)
    _dated(store.write_chunk(chunk(["b", "c"], 2.0), feature_version=4, run_id="r2", chunk_id=0), 20)
    _dated(store.write_chunk(chunk(["c", "d"], 3.0), feature_version=4, run_id="r1", chunk_id=1), 30)
    _dated(store.write_chunk(chunk(["e"], 5.0), feature_version=4, run_id="r3", chunk_id=0), 40)
    return store


def test_compact_merges_every_chunk_into_one_part_and_read_keeps_the_same_rows(tmp_path: Path) -> None:
    store = _store_of_three_runs(tmp_path)
    before = store.read(feature_version=4).sort_values("audio_sha256").reset_index(drop=True)
    assert dict(zip(before["audio_sha256"], before["run_id"])) == {"a": "r1", "b": "r2", "c": "r1", "d": "r1", "e": "r3"}

    done = store.compact(feature_version=4)

    assert (done.merged, done.rows, done.unreadable) == (4, 7, 0)
    assert [path.parent for path in done.parts] == [tmp_path / "feature_version=4" / "merged"]
    assert store.files(feature_version=4) == list(done.parts)
    assert sorted(os.listdir(tmp_path / "feature_version=4")) == ["merged"]  # the runs' emptied folders are gone
    assert done.parts[0].stat().st_mtime_ns == (86_400 + 40) * 1_000_000_000  # dated as its newest chunk
    after = store.read(feature_version=4).sort_values("audio_sha256").reset_index(drop=True)
    assert after.equals(before[after.columns]) and sorted(after.columns) == sorted(before.columns)
    # pandas reads the version's folder whole, chunk folders and parts: every row with its run.
    _dated(store.write_chunk(chunk(["f"], 6.0), feature_version=4, run_id="r4", chunk_id=0), 50)
    direct = pd.read_parquet(tmp_path / "feature_version=4")
    assert sorted(zip(direct["audio_sha256"], direct["run_id"].astype(str))) == [
        ("a", "r1"), ("b", "r1"), ("b", "r2"), ("c", "r1"), ("c", "r2"), ("d", "r1"), ("e", "r3"), ("f", "r4")
    ]


def test_rows_written_after_a_compaction_still_win(tmp_path: Path) -> None:
    store = _store_of_three_runs(tmp_path)
    store.compact(feature_version=4)
    _dated(store.write_chunk(chunk(["a"], 7.0), feature_version=4, run_id="r4", chunk_id=0), 50)
    assert store.new_chunk_id("r4") == 1
    rows = store.read(feature_version=4, columns=["audio_sha256", "f0_mean", "run_id"]).set_index("audio_sha256")
    assert rows.loc["a"].tolist() == [7.0, "r4"] and rows.loc["c"].tolist() == [3.0, "r1"]


def test_compact_needs_min_files_and_leaves_unreadable_chunks_in_place(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    only = store.write_chunk(chunk(["a"], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    assert store.compact(feature_version=4).merged == 0 and only.exists()
    assert store.compact(feature_version=5).parts == ()  # nothing written for that version
    broken = store.write_chunk(chunk(["b"], 2.0), feature_version=4, run_id="r2", chunk_id=0)
    broken.write_bytes(b"PAR1 truncated")
    with caplog.at_level(logging.WARNING, logger="store.feature_store"):
        done = store.compact(feature_version=4)
    assert (done.merged, done.rows, done.unreadable) == (1, 1, 1)
    assert broken.exists() and not only.exists() and str(broken) in caplog.text


def test_chunks_of_other_columns_go_to_parts_of_their_own(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.write_chunk(chunk(["a"], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    store.write_chunk(chunk(["b"], 2.0).drop_columns(["f0_mean"]), feature_version=4, run_id="r2", chunk_id=0)
    store.write_chunk(chunk(["c"], 3.0), feature_version=4, run_id="r2", chunk_id=1)
    done = store.compact(feature_version=4)
    assert len(done.parts) == 2 and done.rows == 3
    # As before the merge: the chunk without f0_mean is skipped when f0_mean is asked for, not read as null.
    assert sorted(store.read(feature_version=4, columns=["audio_sha256", "f0_mean"])["audio_sha256"]) == ["a", "c"]


def test_a_large_merge_is_written_in_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feature_store, "ROW_GROUP_ROWS", 4)
    store = FeatureStore(tmp_path)
    for chunk_id in range(5):
        store.write_chunk(chunk([f"{chunk_id}-{i}" for i in range(3)], float(chunk_id)), feature_version=4, run_id="r1", chunk_id=chunk_id)
    (part,) = store.compact(feature_version=4).parts
    assert [pq.ParquetFile(part).metadata.row_group(i).num_rows for i in range(3)] == [6, 6, 3]
    assert len(store.read(feature_version=4)) == 15


def test_a_failed_merge_leaves_every_chunk_and_no_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store_of_three_runs(tmp_path)
    before = sorted(map(str, store.files(feature_version=4)))

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.compact(feature_version=4)
    assert sorted(map(str, store.files(feature_version=4))) == before
    assert os.listdir(tmp_path / "feature_version=4" / "merged") == []  # no part, no temporary file


def test_a_write_into_a_folder_a_compaction_just_removed_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(tmp_path)
    write_table = pq.write_table
    calls = []

    def compaction_in_between(table: pa.Table, where: Path) -> None:
        calls.append(where)
        if len(calls) == 1:
            Path(where).parent.rmdir()  # after write_chunk made the folder, before its file is written
        write_table(table, where)

    monkeypatch.setattr(pq, "write_table", compaction_in_between)
    path = store.write_chunk(chunk(["a"], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    assert len(calls) == 2 and store.read(feature_version=4)["audio_sha256"].tolist() == ["a"] and path.exists()


def test_read_of_some_contents_gives_their_rows_as_the_whole_read_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(feature_store, "ROW_GROUP_ROWS", 2)  # a part of several row groups, read one at a time
    store = _store_of_three_runs(tmp_path)
    store.compact(feature_version=4)
    _dated(store.write_chunk(chunk(["a", "f"], 7.0), feature_version=4, run_id="r4", chunk_id=0), 50)
    whole = store.read(feature_version=4, columns=["audio_sha256", "f0_mean", "run_id"]).set_index("audio_sha256")
    some = store.read(feature_version=4, columns=["audio_sha256", "f0_mean", "run_id"], hashes={"a", "c", "e", "nowhere"}).set_index("audio_sha256")
    assert some.sort_index().equals(whole.loc[["a", "c", "e"]]) and some.loc["a"].tolist() == [7.0, "r4"]
    assert store.read(feature_version=4, columns=["f0_mean"], hashes=set()).empty
    # As the whole read: a file lacking a column asked for is skipped with a warning, not read as nulls.
    store.write_chunk(chunk(["g"], 8.0).drop_columns(["f0_mean"]), feature_version=4, run_id="r5", chunk_id=0)
    with caplog.at_level(logging.WARNING, logger="store.feature_store"):
        assert store.read(feature_version=4, columns=["audio_sha256", "f0_mean"], hashes={"g", "f"})["audio_sha256"].tolist() == ["f"]
    assert "run_id=r5" in caplog.text and "no column f0_mean" in caplog.text


@pytest.mark.parametrize("hashes", [None, {"a", "b", "c", "d", "e"}])
def test_a_read_that_a_compaction_overtakes_reads_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashes: set[str] | None) -> None:
    store = _store_of_three_runs(tmp_path)
    expected = store.read(feature_version=4)
    listed = FeatureStore.files

    def listed_then_merged(self: FeatureStore, *, feature_version: int) -> list[Path]:
        files = listed(self, feature_version=feature_version)
        if any(path.parent.name.startswith("run_id=") for path in files):
            FeatureStore(self.root).compact(feature_version=feature_version)  # between the listing and the reads
        return files

    monkeypatch.setattr(FeatureStore, "files", listed_then_merged)
    frame = store.read(feature_version=4, hashes=hashes)
    assert frame.sort_values("audio_sha256").reset_index(drop=True).equals(expected.sort_values("audio_sha256").reset_index(drop=True))


def test_a_chunk_another_compaction_merged_meanwhile_is_neither_merged_again_nor_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store_of_three_runs(tmp_path)
    dated = feature_store._by_write_time

    def one_gone_once_listed(paths: object) -> list[tuple[Path, os.stat_result]]:
        listed = dated(paths)  # type: ignore[arg-type]
        listed[0][0].unlink()
        return listed

    monkeypatch.setattr(feature_store, "_by_write_time", one_gone_once_listed)
    done = store.compact(feature_version=4)
    assert (done.merged, done.rows, done.unreadable) == (3, 5, 0)


def test_compact_removes_the_temporary_files_of_writers_that_crashed_and_only_theirs(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.write_chunk(chunk(["a"], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    (tmp_path / "feature_version=4" / "merged").mkdir()
    crashed = [tmp_path / "feature_version=4" / "run_id=r1" / ".chunk-00001.parquet.123.tmp", tmp_path / "feature_version=4" / "merged" / ".part-x.parquet.123.tmp"]
    writing = tmp_path / "feature_version=4" / "merged" / ".part-y.parquet.456.tmp"
    for path in [*crashed, writing]:
        path.write_bytes(b"half a file")
    for path in crashed:
        os.utime(path, (time.time() - 2 * 86_400, time.time() - 2 * 86_400))
    done = store.compact(feature_version=4)
    assert done.stale_removed == 2 and done.merged == 0 and done.line().endswith("; 2 stale temporary files removed")
    assert not any(path.exists() for path in crashed) and writing.exists()


def listed_chunk(rows: list[tuple[str, str, str | None]], value: float) -> pa.Table:
    """A chunk whose rows are (audio_sha256, path, subject_id), as analyze writes them."""
    hashes, paths, subjects = (list(column) for column in zip(*rows))
    return pa.table({"audio_sha256": hashes, "path": paths, "subject_id": pa.array(subjects, pa.string()), "f0_mean": [value] * len(rows)})


def test_forget_rewrites_each_file_without_the_rows_named_keeping_the_rest_and_its_write_time(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.write_chunk(listed_chunk([("a", "/c/a.wav", "s1"), ("b", "/c/b.wav", "s2")], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    store.write_chunk(listed_chunk([("c", "/c/c.wav", None), ("d", "/c/d.wav", "s3")], 1.0), feature_version=4, run_id="r1", chunk_id=1)
    store.compact(feature_version=4)  # a merged part of the four rows
    only_forgotten = store.write_chunk(listed_chunk([("a", "/c/a-copy.wav", None)], 2.0), feature_version=4, run_id="r2", chunk_id=0)
    newest = store.write_chunk(listed_chunk([("b", "/c/b.wav", "s2"), ("d", "/c/d.wav", "s3")], 3.0), feature_version=4, run_id="r3", chunk_id=0)
    older_version = store.write_chunk(chunk(["a", "e"], 5.0), feature_version=3, run_id="r0", chunk_id=0)  # no path nor subject column
    dates = {path: path.stat().st_mtime_ns for path in store.files(feature_version=4) + store.files(feature_version=3)}
    part = next(path for path in dates if path.parent.name == "merged")

    assert store.listed_under(subjects={"s1"}, paths={"/c/c.wav"}) == {("a", "/c/a.wav", "s1"), ("c", "/c/c.wav", None)}
    erased = store.forget(hashes={"a"}, paths={"/c/c.wav"}, subjects={"s3"})
    # a: in the part, its own chunk (removed whole) and version 3's chunk; c by its path; d by its subject, twice.
    assert (erased.rows, erased.rewritten, erased.removed, erased.unreadable) == (6, 3, 1, ())
    assert erased.hashes == {"a", "c", "d"}
    assert not only_forgotten.exists()
    for path in (part, newest, older_version):
        assert path.stat().st_mtime_ns == dates[path]  # read() orders files by it
    frame = store.read(feature_version=4)
    assert dict(zip(frame["audio_sha256"], frame["f0_mean"])) == {"b": 3.0}  # the newest chunk's row still wins
    assert store.read(feature_version=3)["audio_sha256"].tolist() == ["e"]
    assert pq.read_table(part).column_names == ["audio_sha256", "path", "subject_id", "f0_mean", "run_id"]
    assert not [name for name in os.listdir(part.parent) + os.listdir(newest.parent) if name.startswith(".")]  # no temporary left
    assert store.forget(hashes={"a"}, paths={"/c/c.wav"}, subjects={"s3"}) == feature_store.Erased()


def test_a_dry_run_counts_what_forget_would_remove_and_changes_nothing(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    first = store.write_chunk(listed_chunk([("a", "/c/a.wav", "s1"), ("b", "/c/b.wav", "s1")], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    second = store.write_chunk(listed_chunk([("a", "/c/a.wav", "s1"), ("c", "/c/c.wav", None)], 1.0), feature_version=4, run_id="r1", chunk_id=1)
    contents = {path: path.read_bytes() for path in (first, second)}
    assert store.forget(hashes=set(), subjects={"s1"}, dry_run=True) == feature_store.Erased(3, 1, 1, (), frozenset({"a", "b"}))
    assert {path: path.read_bytes() for path in (first, second)} == contents


def test_an_unreadable_file_is_named_by_forget_and_left_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path)
    store.write_chunk(listed_chunk([("a", "/c/a.wav", "s1")], 1.0), feature_version=4, run_id="r1", chunk_id=0)
    broken = tmp_path / "feature_version=4" / "run_id=r1" / "chunk-00001.parquet"
    broken.write_bytes(b"PAR1 cut short")
    with caplog.at_level(logging.WARNING, logger="store.feature_store"):
        erased = store.forget(hashes={"a"})
    assert (erased.rows, erased.removed, erased.unreadable) == (1, 1, (broken,))
    assert broken.read_bytes() == b"PAR1 cut short"
    assert f"feature store file {broken} is unreadable, so it could not be searched for the recordings to forget (delete it)" in caplog.text
