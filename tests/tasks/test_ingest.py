"""Discovery: folders, globs, manifests, and every way a path can be wrong."""

from __future__ import annotations

import json
import re
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from features.synth import synth_vowel
from models.artifact import read_bundle
from models.registry import SHIPPED_DIR
from tasks.chunk import AudioPolicy
from tasks.extract import score_chunk
from tasks.ingest import (
    AUDIO_SUFFIXES, Candidate, Discovery, FileRef, check_source, chunked, content_hash, count_listed, discover, hash_candidates, ignored_summary,
    list_source, read_manifest, scored_before, unreadable_audio,
)
from voxflow.errors import SourceError

MAX = 50_000_000


def _tone(path: Path, seconds: float = 0.6, rate: int = 16_000, seed: int = 0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * 150 * t) + noise).astype(np.float32), rate)
    return path


def test_folder_is_walked_recursively_with_unicode_and_spaces(tmp_path: Path) -> None:
    _tone(tmp_path / "a.wav", seed=1)
    _tone(tmp_path / "sub dir" / "ünïcødé clip.flac", seed=2)
    _tone(tmp_path / "sub dir" / "deeper" / "c.ogg", seed=3)
    (tmp_path / "notes.txt").write_text("not audio")
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert sorted(Path(f.path).name for f in found.files) == ["a.wav", "c.ogg", "ünïcødé clip.flac"]
    assert found.ignored == [str(tmp_path / "notes.txt")]
    assert all(len(f.sha256) == 64 for f in found.files)


def test_macos_metadata_in_a_folder_or_a_glob_is_ignored(tmp_path: Path) -> None:
    # AppleDouble files ('._clip.wav') and '__MACOSX' were quarantined as "not audio" by a folder run.
    clip = _tone(tmp_path / "clip.wav")
    (tmp_path / "._clip.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64))
    (tmp_path / "__MACOSX" / "sub").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "._clip.wav").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "__MACOSX" / "sub" / "clip.wav").write_bytes(b"\x00\x05\x16\x07")
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert ([f.path for f in found.files], found.rejected, len(found.ignored)) == ([str(clip)], [], 3)
    assert count_listed(str(tmp_path), limit=100) == 1
    assert [f.path for f in discover(str(tmp_path / "*.wav"), max_file_bytes=MAX).files] == [str(clip)]
    # A '**' glob enters __MACOSX (not a hidden folder) and leaves what it finds there aside too.
    globbed = discover(str(tmp_path / "**" / "*.wav"), max_file_bytes=MAX)
    assert ([f.path for f in globbed.files], globbed.rejected, globbed.ignored) == ([str(clip)], [], [str(tmp_path / "__MACOSX" / "sub" / "clip.wav")])
    assert count_listed(str(tmp_path / "**" / "*.wav"), limit=100) == 1


def test_ignored_files_are_named_and_audio_voxflow_cannot_read_is_told_apart(tmp_path: Path) -> None:
    # A run counted its ignored files but never named them: a folder of phone recordings (.m4a) gave "0 audio files".
    for name in ("a.m4a", "b.M4A", "c.webm", "d.m4a", "e.aac", "f.amr", "g.wma", "h.3gp", "notes.txt", "._x.wav", "README"):
        (tmp_path / name).write_bytes(b"not read")
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert found.files == [] and found.ignored == sorted(str(p) for p in tmp_path.iterdir())
    assert ignored_summary(found.ignored) == (
        "ignored 11 files, not audio voxflow reads (.m4a 3, macOS metadata 1, no suffix 1, .webm 1, .aac 1, .amr 1, .wma 1, .3gp 1, .txt 1): "
        "._x.wav, README, a.m4a, b.M4A, c.webm, ...")
    assert unreadable_audio(found.ignored) == (
        "8 audio files in formats voxflow cannot read (.m4a 3, .webm 1, .aac 1, .amr 1, .wma 1, .3gp 1): convert to wav or flac: "
        "a.m4a, b.M4A, c.webm, d.m4a, e.aac, ...")
    assert unreadable_audio([str(tmp_path / "notes.txt")]) == ""


def test_same_content_twice_is_analysed_once_and_the_repeat_named(tmp_path: Path) -> None:
    original = _tone(tmp_path / "one.wav")
    (tmp_path / "copy.wav").write_bytes(original.read_bytes())
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert [f.path for f in found.files] == [str(tmp_path / "copy.wav")] and found.seen == 2  # the first listed (sorted)
    [duplicate] = found.duplicates
    assert (duplicate.ref.path, duplicate.ref.sha256, duplicate.first) == (str(original), found.files[0].sha256, found.files[0])
    assert duplicate.reason == f"same content as {tmp_path / 'copy.wav'}: analysed once, under that name" and not duplicate.differences


def test_empty_files_are_each_analysed_not_named_duplicates_of_one_another(tmp_path: Path) -> None:
    # Three 0-byte files were one file analysed and two duplicates: each is a bad file of its own.
    for name in ("a.wav", "b.wav", "c.flac"):
        (tmp_path / name).write_bytes(b"")
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert ([Path(f.path).name for f in found.files], found.duplicates) == (["a.wav", "b.wav", "c.flac"], [])


def test_a_manifests_repeats_name_the_subject_and_label_they_differ_in(tmp_path: Path) -> None:
    original = _tone(tmp_path / "m1.wav")
    (tmp_path / "m1_copy.wav").write_bytes(original.read_bytes())
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,subject_id,label\nm1.wav,S1,healthy\nm1_copy.wav,S2,pathological\nm1.wav,S1,\n")
    found = discover(str(manifest), max_file_bytes=MAX)
    assert [(f.path, f.subject_id, f.label) for f in found.files] == [(str(original), "S1", "healthy")]
    copy, again = found.duplicates
    assert (copy.ref.path, copy.ref.subject_id, copy.ref.label) == (str(tmp_path / "m1_copy.wav"), "S2", "pathological")
    assert copy.reason == (
        f"same content as {original}, with another subject_id (S2 vs S1) and label (pathological vs healthy): "
        "analysed once, under that name; check the manifest"
    )
    assert again.ref.path == str(original) and again.reason == "the same file listed again, with another label (missing vs healthy): analysed once; check the manifest"


def test_broken_symlink_and_loop_are_rejected_with_reasons(tmp_path: Path) -> None:
    _tone(tmp_path / "ok.wav")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (tmp_path / "loop-a.wav").symlink_to(tmp_path / "loop-b.wav")
    (tmp_path / "loop-b.wav").symlink_to(tmp_path / "loop-a.wav")
    (tmp_path / "cycle").symlink_to(tmp_path)  # a directory link back to the root must not recurse forever
    found = discover(str(tmp_path), max_file_bytes=MAX)
    reasons = {Path(r.path).name: r.reason for r in found.rejected}
    assert "broken symlink" in reasons["dangling.wav"]
    assert "symlink loop" in reasons["loop-a.wav"] and "symlink loop" in reasons["loop-b.wav"]
    assert [Path(f.path).name for f in found.files] == ["ok.wav"]


def test_oversized_file_is_rejected_before_reading(tmp_path: Path) -> None:
    _tone(tmp_path / "big.wav", seconds=2.0)
    found = discover(str(tmp_path), max_file_bytes=1000)
    assert found.files == [] and "file too large" in found.rejected[0].reason


def _discover_in_child(source: str, queue: multiprocessing.Queue) -> None:
    if os.geteuid() == 0:  # root reads everything: drop to 'nobody'
        os.setgid(65534)
        os.setuid(65534)
    try:
        queue.put(discover(source, max_file_bytes=MAX))
    except Exception as exc:  # noqa: BLE001 - the parent raises it
        queue.put(exc)


def _discover_unprivileged(source: str) -> Discovery:
    """discover() subject to permission checks: in a forked child (voxflow already imported), as 'nobody' under root."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_discover_in_child, args=(source, queue))
    child.start()
    found = queue.get(timeout=60)
    child.join(timeout=30)
    if isinstance(found, Exception):
        raise found
    return found


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A folder 'nobody' can reach (pytest's tmp_path is private to its user); removed with whatever modes the test left."""
    folder = Path(tempfile.mkdtemp(prefix="voxflow-perm-", dir=os.path.realpath("/tmp")))
    folder.chmod(0o755)
    yield folder

    def restore(path: Path) -> None:
        path.chmod(0o755)
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                restore(child)

    restore(folder)
    shutil.rmtree(folder)


def test_unreadable_file_is_rejected_as_permission_denied(reachable_tmp: Path) -> None:
    secret = _tone(reachable_tmp / "secret.wav")
    secret.chmod(0o000)
    rejected = [(r.path, r.reason) for r in _discover_unprivileged(str(reachable_tmp)).rejected]
    assert rejected == [(str(secret), "permission denied: the file is not readable by this user")]


def test_folders_that_cannot_be_listed_or_entered_are_rejected_not_fatal(reachable_tmp: Path) -> None:
    ok = _tone(reachable_tmp / "ok.wav", seed=1)
    fine = _tone(reachable_tmp / "open" / "fine.wav", seed=2)
    inside = _tone(reachable_tmp / "listed" / "inside.wav", seed=3)
    (reachable_tmp / "listed" / "notes.txt").write_text("not audio")
    (reachable_tmp / "listed" / "record.dat").write_bytes(b"\0" * 16)
    _tone(reachable_tmp / "listed" / "deeper" / "deep.wav", seed=4)
    nested = _tone(reachable_tmp / "open" / "listed too" / "nested.wav", seed=5)
    _tone(reachable_tmp / "sealed" / "hidden.wav", seed=6)
    for folder, mode in (("listed", 0o644), ("open/listed too", 0o644), ("sealed", 0o000)):  # 644: read without execute
        (reachable_tmp / folder).chmod(mode)

    found = _discover_unprivileged(str(reachable_tmp))
    assert sorted(f.path for f in found.files) == sorted([str(ok), str(fine)])
    assert sorted((r.path, r.stage, r.reason) for r in found.rejected) == sorted(
        [
            (str(reachable_tmp / "listed" / "deeper"), "discover", "folder not readable: permission denied"),
            (str(inside), "discover", f"permission denied: its folder {inside.parent} cannot be entered by this user"),
            (str(nested), "discover", f"permission denied: its folder {nested.parent} cannot be entered by this user"),
            (str(reachable_tmp / "sealed"), "discover", "folder not readable: permission denied"),
        ]
    )
    assert len(found.ignored) == 2  # notes.txt and record.dat, whose header could not be looked for

    by_glob = _discover_unprivileged(str(reachable_tmp / "listed" / "*"))
    assert by_glob.files == [] and [r.path for r in by_glob.rejected] == [str(inside)]
    assert len(by_glob.ignored) == 3  # and the folder 'deeper', which cannot be told from a file there


def test_a_path_with_a_nul_byte_is_rejected_not_fatal(tmp_path: Path) -> None:
    ok = _tone(tmp_path / "ok.wav")
    found = hash_candidates([Candidate(tmp_path / "bad\0name.wav"), Candidate(ok)], max_file_bytes=MAX)
    assert [f.path for f in found.files] == [str(ok)]
    assert [(r.path, r.stage, r.reason, r.error_class) for r in found.rejected] == [
        (str(tmp_path / "bad\0name.wav"), "discover", "invalid path: embedded null byte", "ValueError")
    ]


def test_manifest_resolves_relative_paths_and_keeps_labels(tmp_path: Path) -> None:
    _tone(tmp_path / "audio" / "x.wav", seed=4)
    _tone(tmp_path / "audio" / "y.wav", seed=5)
    pd.DataFrame({"path": ["audio/x.wav", "audio/y.wav", "audio/missing.wav"], "subject_id": ["s1", "s2", "s3"], "label": ["healthy", "pathological", "healthy"]}).to_csv(tmp_path / "m.csv", index=False)
    found = discover(str(tmp_path / "m.csv"), max_file_bytes=MAX)
    by_name = {Path(f.path).name: f for f in found.files}
    assert by_name["x.wav"].label == "healthy" and by_name["y.wav"].subject_id == "s2"
    assert [(Path(r.path).name, r.reason) for r in found.rejected] == [("missing.wav", "file not found")]


def test_a_manifests_rejected_rows_keep_their_subject_id_and_label(tmp_path: Path) -> None:
    # The quarantine lost the subject whose recording needs redoing: only duplicates kept it.
    (tmp_path / "audio").mkdir()
    (tmp_path / "m.csv").write_text("path,subject_id,label\nmissing.wav,S1,healthy\naudio,S2,pathological\n,S3,healthy\n")
    found = discover(str(tmp_path / "m.csv"), max_file_bytes=MAX)
    assert [(r.reason, r.subject_id, r.reference_label) for r in found.rejected] == [
        ("manifest row 3 has no path", "S3", "healthy"),
        ("file not found", "S1", "healthy"),
        ("a folder, not a file (list its files, or analyse the folder itself)", "S2", "pathological"),
    ]


def test_audio_whose_name_ends_with_a_space_is_listed_by_every_kind_of_source(tmp_path: Path) -> None:
    # A folder walk ignored 'take 1.wav ' (suffix '.wav '), and the file itself was "not an audio file".
    spaced = _tone(tmp_path / "x.wav").rename(tmp_path / "take 1.wav ")
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert ([f.path for f in found.files], found.ignored) == ([str(spaced)], [])
    assert [f.path for f in discover(str(tmp_path / "take*"), max_file_bytes=MAX).files] == [str(spaced)]
    check_source(str(spaced))
    assert [f.path for f in discover(str(spaced), max_file_bytes=MAX).files] == [str(spaced)]
    assert count_listed(str(tmp_path), limit=10) == 1


def test_a_path_not_found_for_a_space_around_a_name_says_so(tmp_path: Path) -> None:
    # The quarantine table showed 'x.wav ' as 'x.wav': "file not found" beside a file that is there.
    _tone(tmp_path / "x.wav", seed=1)
    spaced = _tone(tmp_path / "y.wav", seed=2).rename(tmp_path / "y.wav ")  # a name may end with a space: a path is read as written
    (tmp_path / "m.csv").write_text("path,subject_id\nx.wav ,S1\n x.wav,S2\n sub/x.wav,S3\ny.wav ,S4\n")
    found = discover(str(tmp_path / "m.csv"), max_file_bytes=MAX)
    assert [f.path for f in found.files] == [str(spaced)]
    assert [(r.path, r.reason) for r in found.rejected] == [
        (str(tmp_path / "x.wav "), "file not found: the path ends with a space ('x.wav ')"),
        (str(tmp_path / " x.wav"), "file not found: the file name starts with a space (' x.wav')"),
        (str(tmp_path / " sub" / "x.wav"), "file not found: the folder name ' sub' starts with a space"),
    ]
    with pytest.raises(SourceError, match=re.escape(f"source not found: {tmp_path}/x.wav\t; the path ends with whitespace ('x.wav\\t')")):
        check_source(f"{tmp_path}/x.wav\t")


def test_manifest_rows_naming_a_folder_or_a_pipe_are_rejected_with_what_they_are(tmp_path: Path) -> None:
    _tone(tmp_path / "audio" / "x.wav")
    os.mkfifo(tmp_path / "audio" / "pipe.wav")
    pd.DataFrame({"path": ["audio", "audio/pipe.wav", "audio/x.wav"]}).to_csv(tmp_path / "m.csv", index=False)
    found = discover(str(tmp_path / "m.csv"), max_file_bytes=MAX)
    assert [Path(f.path).name for f in found.files] == ["x.wav"]
    assert sorted((Path(r.path).name, r.reason) for r in found.rejected) == [
        ("audio", "a folder, not a file (list its files, or analyse the folder itself)"),
        ("pipe.wav", "not a regular file (device, pipe or socket)"),
    ]


def test_manifest_rows_without_a_path_are_rejected_and_blank_fields_are_none(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "z.wav"
    (tmp_path / "m.csv").write_text(f"path,subject_id\na.wav,s1\n,s2\n,\n{absolute},\n")
    candidates, rejected = read_manifest(tmp_path / "m.csv")
    assert [(c.path, c.subject_id, c.label) for c in candidates] == [(tmp_path / "a.wav", "s1", None), (absolute, None, None)]
    # Row 2 names subject s2 but no file: rejected with its row; row 3 holds nothing at all and is passed over.
    assert [(r.path, r.stage, r.reason) for r in rejected] == [(f"{tmp_path / 'm.csv'} (row 2)", "discover", "manifest row 2 has no path")]


def test_manifest_cells_stay_text_and_na_like_cells_are_missing(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("\ufeffpath,subject_id,label\na.wav,007,NA\nb.wav,1.50,null\nNA,None,n/a\n\n")
    candidates, rejected = read_manifest(tmp_path / "m.csv")
    assert rejected == []
    # A path is what is written (a file may be called NA); NA-like subjects and labels are missing, as pandas reads them.
    assert [(c.path.name, c.subject_id, c.label) for c in candidates] == [("a.wav", "007", None), ("b.wav", "1.50", None), ("NA", None, None)]
    pd.DataFrame({"path": ["a.wav", "b.wav", None], "label": [1.0, float("nan"), 0.0], "subject_id": [7, 8, 9]}).to_parquet(tmp_path / "m.parquet")
    candidates, rejected = read_manifest(tmp_path / "m.parquet")
    assert [(c.label, c.subject_id) for c in candidates] == [("pathological", "7"), (None, "8")]
    assert [r.reason for r in rejected] == ["manifest row 3 has no path"]


def test_manifest_labels_are_read_as_training_reads_them_and_an_unread_one_is_named_not_fatal(tmp_path: Path) -> None:
    # analyze stored labels as written: 'Pathological', 'sick', '1' beside predicted labels 'pathological'/'healthy'.
    for name in ("a.wav", "b.wav", "c.wav", "d.wav", "e.wav"):
        _tone(tmp_path / name, seed=len(name) + ord(name[0]))
    (tmp_path / "m.csv").write_text("path,label\na.wav,Pathological\nb.wav, healthy \nc.wav,sick\nd.wav,1.0\ne.wav,\n")
    found = discover(str(tmp_path / "m.csv"), max_file_bytes=MAX)
    assert [(Path(f.path).name, f.label) for f in found.files] == [
        ("a.wav", "pathological"), ("b.wav", "healthy"), ("c.wav", None), ("d.wav", "pathological"), ("e.wav", None),
    ]
    assert found.rejected == [] and found.unread_labels == [
        f"{tmp_path / 'm.csv'} (row 3): label 'sick' is not 0/1 nor pathological/healthy: its file is scored without a reference label"
    ]
    pd.DataFrame({"path": ["a.wav", "b.wav"], "label": [1, 0]}).to_parquet(tmp_path / "m.parquet")
    assert [c.label for c in read_manifest(tmp_path / "m.parquet")[0]] == ["pathological", "healthy"]


def test_a_prediction_stored_with_a_label_as_written_is_no_other_label_when_listed_again() -> None:
    # Re-listing with lowercase labels warned "another label (pathological vs Pathological)".
    ref = FileRef("/in/voice005.hea", "ab" * 32, 44, "S5", "pathological")
    assert scored_before(ref, {"path": ref.path, "subject_id": "S5", "reference_label": "Pathological", "run_id": "r1"}) is None
    assert scored_before(ref, {"path": ref.path, "subject_id": "S5", "reference_label": "0", "run_id": "r1"}).differences == ["label (pathological vs healthy)"]


def test_manifest_columns_match_in_any_case_and_spacing_and_fields_are_stripped(tmp_path: Path) -> None:
    # 'path, subject_id, label' had lost both fields (null on every row); 'Path,Subject_ID,Label' had no 'path' column.
    (tmp_path / "spaced.csv").write_text("path, subject_id, label\na.wav, S1 , healthy\n")
    (tmp_path / "cased.csv").write_text(" Path ,Subject_ID,LABEL\na.wav,S1,healthy\n")
    pd.DataFrame({"PATH": ["a.wav"], "Subject_Id ": [" S1"], "Label": ["healthy "]}).to_parquet(tmp_path / "cased.parquet")
    for name in ("spaced.csv", "cased.csv", "cased.parquet"):
        check_source(str(tmp_path / name))
        candidates, rejected = read_manifest(tmp_path / name)
        assert [(c.path, c.subject_id, c.label) for c in candidates] == [(tmp_path / "a.wav", "S1", "healthy")] and rejected == [], name
    (tmp_path / "both.csv").write_text("path,Path,label\na.wav,b.wav,1\n")
    for look in (check_source, list_source):
        with pytest.raises(SourceError, match=r"has 2 'path' columns \('path', 'Path'\); keep one$"):
            look(str(tmp_path / "both.csv"))


def test_parquet_manifest_and_missing_path_column(tmp_path: Path) -> None:
    _tone(tmp_path / "x.wav")
    pd.DataFrame({"path": ["x.wav"]}).to_parquet(tmp_path / "m.parquet")
    assert len(discover(str(tmp_path / "m.parquet"), max_file_bytes=MAX).files) == 1
    pd.DataFrame({"file": ["x.wav"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SourceError, match="no 'path' column"):
        discover(str(tmp_path / "bad.csv"), max_file_bytes=MAX)
    (tmp_path / "twice.csv").write_text("path,label,path\nx.wav,1,x.wav\n")
    with pytest.raises(SourceError, match="has 2 'path' columns; keep one"):
        discover(str(tmp_path / "twice.csv"), max_file_bytes=MAX)


def test_glob_source(tmp_path: Path) -> None:
    _tone(tmp_path / "a" / "one.wav", seed=1)
    _tone(tmp_path / "b" / "two.wav", seed=2)
    _tone(tmp_path / "b" / "three.flac", seed=3)
    found = discover(str(tmp_path / "**" / "*.wav"), max_file_bytes=MAX)
    assert sorted(Path(f.path).name for f in found.files) == ["one.wav", "two.wav"]



def test_glob_sources_match_names_as_glob_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("1.wav", "2.flac", ".hidden.wav", "a/3.wav", "a/b/4.wav", "c1/5.wav", "c2/6.wav", "c3/7.wav", ".h/8.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())  # listed by name, never read
    monkeypatch.chdir(tmp_path)

    def listed(pattern: str) -> list[str]:
        return [c.path.relative_to(tmp_path).as_posix() for c in list_source(pattern)[0]]

    assert listed("*.wav") == ["1.wav"]  # one level; '*' matches no name starting with '.'
    assert listed(".*.wav") == [".hidden.wav"]
    assert listed("**/*.wav") == ["1.wav", "a/3.wav", "a/b/4.wav", "c1/5.wav", "c2/6.wav", "c3/7.wav"]  # not into .h
    assert listed("c[12]/*.wav") == ["c1/5.wav", "c2/6.wav"]
    assert listed("a/?/*.wav") == ["a/b/4.wav"]
    assert listed(str(tmp_path / "**" / "*.wav")) == listed("**/*.wav")


@pytest.mark.timeout(30)
def test_a_glob_over_directory_link_loops_lists_each_file_once(tmp_path: Path) -> None:
    # glob's '**' follows directory links with no loop check: two links back to an ancestor made it recurse 2^depth times.
    data = tmp_path / "data"
    for name in ("a.wav", "sub/b.wav", "sub/deeper/c.wav"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(name.encode())
    (data / "sub" / "up1").symlink_to(data)
    (data / "sub" / "up2").symlink_to(data)
    pattern = str(data / "**" / "*.wav")
    check_source(pattern)
    assert count_listed(pattern, limit=100) == 3
    candidates, rejected, ignored = list_source(pattern)
    assert [c.path for c in candidates] == [data / "a.wav", data / "sub" / "b.wav", data / "sub" / "deeper" / "c.wav"]
    assert (rejected, ignored) == ([], [])

def test_a_relative_source_is_stored_as_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tone(tmp_path / "corpus" / "a.wav", seed=1)
    _tone(tmp_path / "corpus" / "sub" / "b.wav", seed=2)
    (tmp_path / "corpus" / "m.csv").write_text("path\na.wav\nsub/b.wav\n")
    monkeypatch.chdir(tmp_path)
    for source in ("corpus", "corpus/m.csv", "corpus/**/*.wav", "corpus/a.wav"):
        paths = [f.path for f in discover(source, max_file_bytes=MAX).files]
        assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths), (source, paths)


def test_every_kind_of_source_names_a_file_by_one_absolute_path_links_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A manifest's '../audio/x.wav' was stored as '/.../lists/../audio/x.wav' and '~/x.wav' as '/.../lists/~/x.wav'.
    clip = _tone(tmp_path / "audio" / "x.wav")
    (tmp_path / "linked").symlink_to(tmp_path / "audio")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.csv").write_text("path\n../audio/x.wav\n~/audio/./x.wav\n../linked/x.wav\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "lists")
    sources = ("../audio", "../lists/../audio/*.wav", "../audio/x.wav", "~/audio", "~/lists/m.csv", "m.csv")
    listed = {source: [str(c.path) for c in list_source(source)[0]] for source in sources}
    via_manifest = [str(clip), str(clip), str(tmp_path / "linked" / "x.wav")]  # a link's own name kept, not its target's
    assert listed == {**{source: [str(clip)] for source in sources[:4]}, "~/lists/m.csv": via_manifest, "m.csv": via_manifest}


def test_a_name_starting_with_a_tilde_that_names_no_user_is_a_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pathlib's expanduser raised RuntimeError ("Could not determine home directory") for '~take1.wav': the whole run ended in a traceback
    clip = _tone(tmp_path / "~take1.wav")
    (tmp_path / "m.csv").write_text("path\n~take1.wav\n")
    monkeypatch.chdir(tmp_path)
    check_source("~take1.wav")
    assert count_listed("~take1.wav", limit=10) == 1
    assert [str(c.path) for c in list_source("~take1.wav")[0]] == [str(c.path) for c in list_source("m.csv")[0]] == [str(clip)]


def test_count_listed_counts_what_discovery_lists_up_to_its_limit(tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / "corpus" / f"sub{index % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / f"sub{index % 2}" / f"clip{index}.wav").write_bytes(b"")  # counted by name, never read
    (tmp_path / "corpus" / "notes.txt").write_text("not audio")
    folder = str(tmp_path / "corpus")
    assert [count_listed(folder, limit=limit) for limit in (100, 3)] == [5, 3]
    assert count_listed(str(tmp_path / "corpus" / "**" / "*.wav"), limit=100) == 5
    assert count_listed(str(tmp_path / "corpus" / "sub0" / "clip0.wav"), limit=100) == 1
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(f"clip{i}.wav,1\n" for i in range(7)))
    assert [count_listed(str(tmp_path / "m.csv"), limit=limit) for limit in (100, 4)] == [7, 4]
    pd.DataFrame({"path": [f"clip{i}.wav" for i in range(9)]}).to_parquet(tmp_path / "m.parquet")
    assert [count_listed(str(tmp_path / "m.parquet"), limit=limit) for limit in (100, 4)] == [9, 4]
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not a footer")
    assert count_listed(str(tmp_path / "broken.parquet"), limit=100) == 0  # discovery names the fault
    assert count_listed(str(tmp_path / "nope"), limit=100) == 0


def test_a_file_that_is_neither_audio_nor_a_usable_manifest_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / "wrong.csv").write_text("file,label\nx.wav,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(bytes(range(128, 256)))
    pd.DataFrame({"file": ["x.wav"]}).to_parquet(tmp_path / "wrong.parquet")
    (tmp_path / "labels.csv").write_text("sha256,label\n" + "0" * 64 + ",1\n")
    expected = {
        "README.txt": "is not an audio file, folder or manifest", "wrong.csv": "has no 'path' column \\(columns: file, label\\)",
        "empty.csv": "is empty", "binary.csv": "could not be read", "wrong.parquet": "has no 'path' column", "labels.csv": "has no 'path' column",
    }
    for name, message in expected.items():
        with pytest.raises(SourceError, match=message):
            check_source(str(tmp_path / name))
    (tmp_path / "rec.dat").write_bytes(bytes(16))  # a WFDB signal file: its record is read from the header
    hint = f"is not an audio file, folder or manifest (.csv/.parquet); a WFDB record is read from its header: name {tmp_path / 'rec.hea'}"
    for check in (check_source, list_source):
        with pytest.raises(SourceError, match=re.escape(hint)):
            check(str(tmp_path / "rec.dat"))
    check_source(str(tmp_path / "labels.csv"), lists_paths=False)  # a label manifest may name audio by sha256
    with pytest.raises(SourceError, match="is a folder: name a CSV/Parquet manifest"):
        check_source(str(tmp_path), lists_paths=False)


def test_an_empty_source_is_refused_not_read_as_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tone(tmp_path / "here.wav")
    monkeypatch.chdir(tmp_path)
    for look in (check_source, list_source, lambda source: discover(source, max_file_bytes=MAX)):
        with pytest.raises(SourceError, match=r"^SOURCE is empty \(''\): name a file or folder$"):
            look("")


def test_missing_source_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="source not found"):
        check_source(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match=r"^no files match .*/\*\.wav$"):
        check_source(str(tmp_path / "*.wav"))
    with pytest.raises(SourceError, match=r"^no files match .*/x/\*\*/\*\.xyz$"):
        check_source(str(tmp_path / "x" / "**" / "*.xyz"))


@pytest.mark.parametrize("kind", ["device", "pipe"])
def test_a_source_that_is_no_file_or_folder_is_named_as_such(tmp_path: Path, kind: str) -> None:
    # /dev/null or a FIFO exists: "source not found" sent the user looking for a typo (and the flow only said so once started).
    if kind == "device":
        source = "/dev/null"
    else:
        source = str(tmp_path / "live.wav")
        os.mkfifo(source)
    expected = f"^{re.escape(source)} is not a regular file or folder \\(a device, pipe or socket\\)"
    with pytest.raises(SourceError, match=expected):
        check_source(source)
    with pytest.raises(SourceError, match=expected):
        list_source(source)
    os.symlink(source, tmp_path / "link")  # a link to it is no file either
    with pytest.raises(SourceError, match="is not a regular file or folder"):
        check_source(str(tmp_path / "link"))


def test_an_audio_file_a_folder_and_a_link_to_either_are_sources(tmp_path: Path) -> None:
    sf.write(tmp_path / "clip.wav", np.zeros(800, dtype=np.float32), 8_000)
    os.symlink(tmp_path / "clip.wav", tmp_path / "clip-link.wav")
    os.symlink(tmp_path, tmp_path / "folder-link")
    for source in ("clip.wav", "clip-link.wav", ".", "folder-link"):
        check_source(str(tmp_path / source))


def test_wfdb_hash_covers_the_signal_file(tmp_path: Path, voiced_dir: Path) -> None:
    for name in ("voice001.hea", "voice001.dat"):
        (tmp_path / name).write_bytes((voiced_dir / name).read_bytes())
    before, size = content_hash(tmp_path / "voice001.hea", max_bytes=MAX)
    assert size == (tmp_path / "voice001.hea").stat().st_size + (tmp_path / "voice001.dat").stat().st_size
    data = bytearray((tmp_path / "voice001.dat").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "voice001.dat").write_bytes(bytes(data))
    assert content_hash(tmp_path / "voice001.hea", max_bytes=MAX)[0] != before
    found: Discovery = discover(str(tmp_path), max_file_bytes=MAX)
    assert len(found.files) == 1 and found.ignored == []  # the .dat is part of the record, not "non-audio"


# Every suffix voxflow reads but WFDB's, as soundfile writes it: (format, subtype).
WRITTEN_AS = {
    ".wav": ("WAV", "PCM_16"), ".wave": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS"), ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III"), ".aif": ("AIFF", "PCM_16"), ".aiff": ("AIFF", "PCM_24"),
    ".aifc": ("AIFF", "ULAW"), ".caf": ("CAF", "ALAC_16"), ".w64": ("W64", "PCM_16"), ".au": ("AU", "PCM_16"),
}


def test_each_format_libsndfile_reads_is_listed_accepted_and_scored(tmp_path: Path) -> None:
    # .aif/.aiff/.aifc/.caf/.w64/.au were ignored in a folder and refused as a SOURCE, yet scored from a manifest.
    for index, (suffix, (kind, subtype)) in enumerate(WRITTEN_AS.items()):
        sf.write(tmp_path / f"clip{suffix}", synth_vowel(f0_hz=120 + 10 * index, duration_s=1.5, sr=16_000, seed=index), 16_000, format=kind, subtype=subtype)
        check_source(str(tmp_path / f"clip{suffix}"))
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert sorted(Path(f.path).suffix for f in found.files) == sorted(WRITTEN_AS) and (found.rejected, found.ignored) == ([], [])
    policy = AudioPolicy(sample_rate=16_000, min_duration_s=0.5, max_duration_s=30.0, silence_dbfs=-60.0, clipping_fraction=0.01, file_timeout_s=60.0)
    scored = score_chunk(0, found.files, policy, read_bundle(SHIPPED_DIR))
    assert (scored.table.num_rows, scored.rejected) == (len(WRITTEN_AS), [])
    assert set(WRITTEN_AS) | {".hea"} == AUDIO_SUFFIXES  # each suffix voxflow lists is tested here


def test_chunked_keeps_order_and_sizes() -> None:
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("signal", ["zero-device", "fifo", "folder"])
def test_a_wfdb_signal_file_that_is_not_a_file_is_rejected_not_read_forever(tmp_path: Path, voiced_dir: Path, signal: str) -> None:
    (tmp_path / "voice001.hea").write_bytes((voiced_dir / "voice001.hea").read_bytes())
    dat = tmp_path / "voice001.dat"
    {"zero-device": lambda: dat.symlink_to("/dev/zero"), "fifo": lambda: os.mkfifo(dat), "folder": dat.mkdir}[signal]()
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert found.files == []
    assert [(Path(r.path).name, r.reason) for r in found.rejected] == [
        ("voice001.hea", "its signal file voice001.dat is not a regular file (a folder, device, pipe or socket)")]


def test_a_file_name_that_is_not_utf8_is_rejected_with_its_bytes_escaped(tmp_path: Path) -> None:
    _tone(tmp_path / "ok.wav")
    shutil.copy(tmp_path / "ok.wav", os.fsencode(tmp_path) + b"/bad\xff\xfename.wav")
    _tone(tmp_path / "other.wav", seconds=1.5)
    found = discover(str(tmp_path), max_file_bytes=MAX)
    assert sorted(Path(f.path).name for f in found.files) == ["ok.wav", "other.wav"]
    assert [(r.path, r.reason) for r in found.rejected] == [(f"{tmp_path}/bad\\xff\\xfename.wav", "its name is not valid UTF-8 (rename the file)")]
    json.dumps([r.path for r in found.rejected]).encode("utf-8")  # storable
