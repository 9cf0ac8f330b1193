"""Labelled manifests and the VOICED adapter: hashing, relative paths, label vocabularies, rejections."""

import os
from pathlib import Path

import pandas as pd
import pytest

from tasks.ingest import content_hash
from tasks.labels import LabelledAudio, binary_label, read_labels, read_voiced_labels
from tests.helpers import voiced_record
from voxflow.errors import SourceError


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("0", 0), ("pathological", 1), ("Healthy", 0), ("true", 1), (0, 0), ("1.00", 1), (0.0, 0)])
def test_binary_label_vocabulary(value: object, expected: int) -> None:
    assert binary_label(value) == expected


def test_binary_label_needs_positive_for_other_words() -> None:
    with pytest.raises(SourceError, match="--positive"):
        binary_label("dysphonia")
    assert binary_label("dysphonia", positive="dysphonia") == 1 and binary_label("normal", positive="dysphonia") == 0


@pytest.mark.parametrize(("value", "positive"), [("1.0", "1"), (1.0, "1"), ("1", "1.00"), (" Pathological", "pathological"), ("DYSPHONIA", "Dysphonia")])
def test_the_positive_label_matches_in_any_case_and_numbers_by_value(value: object, positive: str) -> None:
    assert binary_label(value, positive=positive) == 1


def test_float_labels_from_parquet_and_the_values_counted_negative(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF-a")
    (tmp_path / "b.wav").write_bytes(b"RIFF-b")
    (tmp_path / "c.wav").write_bytes(b"RIFF-c")
    pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"], "label": [1.0, 0.0, 2.0]}).to_parquet(tmp_path / "labels.parquet")
    found = read_labels(tmp_path / "labels.parquet", positive="1", max_file_bytes=10**6)
    assert not found.rejected and sorted(row.label for row in found.rows) == [0, 0, 1]
    assert found.negative_labels == {"0.0": 1, "2.0": 1}


def test_a_positive_label_no_row_has_is_refused_naming_the_labels(tmp_path: Path) -> None:
    pd.DataFrame({"sha256": ["ab" * 32, "cd" * 32, "ef" * 32], "label": ["Healthy", "pathological", "Pathological"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SourceError, match=r"^--positive 'Pathologic' matches no label; the labels are: Healthy 1, pathological 1, Pathological 1$"):
        read_labels(tmp_path / "m.csv", positive="Pathologic", max_file_bytes=10**6)
    assert [row.label for row in read_labels(tmp_path / "m.csv", positive="PATHOLOGICAL", max_file_bytes=10**6).rows] == [0, 1, 1]


def test_manifest_rows_by_path_or_hash(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"RIFF-a")
    (tmp_path / "audio" / "b.wav").write_bytes(b"RIFF-b")
    known = "ab" * 32
    pd.DataFrame(
        [
            {"path": "audio/a.wav", "sha256": None, "label": "dysphonia", "subject_id": "s1", "age": "40"},
            {"path": str(tmp_path / "audio" / "b.wav"), "sha256": None, "label": "normal", "subject_id": "s2", "age": None},
            {"path": None, "sha256": known, "label": "dysphonia", "subject_id": None, "age": None},
            {"path": "audio/missing.wav", "sha256": None, "label": "normal", "subject_id": "s3", "age": None},
            {"path": None, "sha256": "not-a-hash", "label": "normal", "subject_id": "s4", "age": None},
            {"path": "audio/a.wav", "sha256": None, "label": None, "subject_id": "s1", "age": None},
        ]
    ).to_csv(tmp_path / "labels.csv", index=False)
    found = read_labels(tmp_path / "labels.csv", positive="dysphonia", max_file_bytes=10**6)
    rows, rejected = found.rows, found.rejected
    by_hash = {row.sha256: row for row in rows}
    a = by_hash[content_hash(tmp_path / "audio" / "a.wav", max_bytes=10**6)[0]]
    assert a.label == 1 and a.subject_id == "s1" and a.metadata == {"age": "40"} and a.path == str(tmp_path / "audio" / "a.wav")
    assert by_hash[known].label == 1 and by_hash[known].path is None
    assert len(rows) == 3
    reasons = sorted(r["reason"] for r in rejected)
    assert len(rejected) == 3 and "no label" in reasons and any("missing.wav" in r for r in reasons)
    assert LabelledAudio.from_doc(a.to_doc(source="x")) == a


@pytest.mark.parametrize("column", ["sha256", "audio_sha256", "Audio_SHA256"])
def test_a_row_with_path_and_sha256_is_keyed_by_the_sha256_when_its_file_is_gone_and_refused_when_they_differ(tmp_path: Path, column: str) -> None:
    # The path's hash had always won: a moved file rejected the row although its hash would do, and a path
    # naming other audio stored the label under that audio's hash without a word.
    (tmp_path / "a.wav").write_bytes(b"RIFF-a")
    (tmp_path / "b.wav").write_bytes(b"RIFF-b")
    a, b = (content_hash(tmp_path / name, max_bytes=10**6)[0] for name in ("a.wav", "b.wav"))
    moved = "cd" * 32
    pd.DataFrame({"path": ["a.wav", "gone/c.wav", "a.wav"], column: [a.upper(), moved, b], "label": ["1", "0", "1"]}).to_csv(tmp_path / "m.csv", index=False)
    found = read_labels(tmp_path / "m.csv", max_file_bytes=10**6)
    assert [(row.sha256, row.path, row.label) for row in found.rows] == [(a, str(tmp_path / "a.wav"), 1), (moved, None, 0)]
    assert [note["row"] for note in found.by_sha256] == ["m.csv:3"] and str(tmp_path / "gone" / "c.wav") in found.by_sha256[0]["reason"]
    assert found.rejected == [{"row": "m.csv:4", "reason": f"{tmp_path / 'a.wav'}: its content's sha256 {a[:12]} differs from the row's sha256 {b[:12]}"}]


def test_rows_of_one_audio_that_disagree_are_all_refused_and_agreeing_ones_kept_once(tmp_path: Path) -> None:
    for name in "ab":
        (tmp_path / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    pd.DataFrame(
        [
            {"path": "a.wav", "label": "pathological", "subject_id": "s1"},
            {"path": "b.wav", "label": "healthy", "subject_id": "s2"},
            {"path": str(tmp_path / "a.wav"), "label": "healthy", "subject_id": "s1"},
            {"path": "b.wav", "label": "0", "subject_id": "s2", "note": "second"},
        ]
    ).to_csv(tmp_path / "labels.csv", index=False)
    found = read_labels(tmp_path / "labels.csv", max_file_bytes=10**6)
    assert [(row.path, row.original_label, row.metadata) for row in found.rows] == [(str(tmp_path / "b.wav"), "healthy", {})]
    assert found.conflicts == 1 and [r["row"] for r in found.rejected] == ["labels.csv:2", "labels.csv:4"]
    assert found.rejected[0]["reason"] == (
        "the same audio is listed with another label or subject: labels.csv:2 (label pathological, subject s1); labels.csv:4 (label healthy, subject s1)"
    )
    pd.DataFrame({"path": ["a.wav", "a.wav"], "label": ["1", "1"], "subject_id": ["s1", "s9"]}).to_csv(tmp_path / "subjects.csv", index=False)
    assert read_labels(tmp_path / "subjects.csv", max_file_bytes=10**6).conflicts == 1


def test_columns_and_fields_are_read_as_analyze_reads_them(tmp_path: Path) -> None:
    for name in "ab":
        (tmp_path / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    (tmp_path / "labels.csv").write_text("Path, Label, Subject_ID, Site\na.wav, pathological , S1 , north\nb.wav,healthy,S2,\n")
    rows = read_labels(tmp_path / "labels.csv", max_file_bytes=10**6).rows
    assert [(row.path, row.label, row.original_label, row.subject_id, row.metadata) for row in rows] == [
        (str(tmp_path / "a.wav"), 1, "pathological", "S1", {"Site": "north"}), (str(tmp_path / "b.wav"), 0, "healthy", "S2", {})]
    (tmp_path / "twice.csv").write_text("path,label,Label\na.wav,1,0\n")
    with pytest.raises(SourceError, match=r"has 2 'label' columns \('label', 'Label'\); keep one$"):
        read_labels(tmp_path / "twice.csv", max_file_bytes=10**6)


def test_paths_are_kept_absolute_whatever_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cohort" / "audio").mkdir(parents=True)
    (tmp_path / "cohort" / "audio" / "a.wav").write_bytes(b"RIFF-a")
    pd.DataFrame({"path": ["audio/a.wav"], "label": ["1"]}).to_csv(tmp_path / "cohort" / "labels.csv", index=False)
    voiced_record(tmp_path / "voiced", "voice001", "healthy")
    monkeypatch.chdir(tmp_path)
    assert [row.path for row in read_labels(Path("cohort/labels.csv"), max_file_bytes=10**6).rows] == [str(tmp_path / "cohort" / "audio" / "a.wav")]
    assert [row.path for row in read_voiced_labels(Path("voiced"), max_file_bytes=10**6).rows] == [str(tmp_path / "voiced" / "voice001.hea")]


def test_paths_are_made_absolute_as_analyze_makes_them_links_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in "ab":
        (tmp_path / "audio" / f"{name}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "audio" / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "labels.csv").write_text("path,label\n../audio/a.wav,1\n~/audio/b.wav,0\n")
    (tmp_path / "linked").symlink_to(tmp_path / "audio")
    (tmp_path / "audio" / "labels.csv").write_text("path,label\na.wav,1\n")
    voiced_record(tmp_path / "voiced", "voice001", "healthy")
    (tmp_path / "voiced-link").symlink_to(tmp_path / "voiced")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert [row.path for row in read_labels(tmp_path / "lists" / "labels.csv", max_file_bytes=10**6).rows] == [
        str(tmp_path / "audio" / "a.wav"), str(tmp_path / "audio" / "b.wav")]
    assert [row.path for row in read_labels(tmp_path / "linked" / "labels.csv", max_file_bytes=10**6).rows] == [str(tmp_path / "linked" / "a.wav")]
    assert [row.path for row in read_voiced_labels(tmp_path / "voiced-link", max_file_bytes=10**6).rows] == [str(tmp_path / "voiced-link" / "voice001.hea")]


def test_infinite_metadata_is_kept_as_none(tmp_path: Path) -> None:
    for name in "ab":
        (tmp_path / f"{name}.wav").write_bytes(f"RIFF-{name}".encode())
    pd.DataFrame({"path": ["a.wav", "b.wav"], "label": ["1", "0"], "vhi": [float("inf"), 15.0]}).to_parquet(tmp_path / "labels.parquet")
    rows = read_labels(tmp_path / "labels.parquet", max_file_bytes=10**6).rows
    assert [row.metadata for row in rows] == [{"vhi": None}, {"vhi": 15.0}]


@pytest.mark.timeout(30)  # reading the pipe would wait forever
def test_rows_naming_a_pipe_a_folder_or_a_nul_byte_are_rejected_with_the_reason(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "folder.wav").mkdir()
    pd.DataFrame({"path": ["pipe.wav", "folder.wav", "a\0b.wav"], "label": ["1", "0", "1"]}).to_parquet(tmp_path / "labels.parquet")
    found = read_labels(tmp_path / "labels.parquet", max_file_bytes=10**6)
    reasons = {r["row"]: r["reason"] for r in found.rejected}
    assert not found.rows and list(reasons) == ["labels.parquet:2", "labels.parquet:3", "labels.parquet:4"]
    assert "not a regular file" in reasons["labels.parquet:2"] and "a folder, not a file" in reasons["labels.parquet:3"]
    assert "invalid path: embedded null byte" in reasons["labels.parquet:4"]


def test_voiced_records_it_skips_are_rejected_rows(tmp_path: Path) -> None:
    voiced_record(tmp_path, "voice001", "healthy")
    voiced_record(tmp_path, "voice002", None)
    found = read_voiced_labels(tmp_path, max_file_bytes=10**6)
    assert len(found.rows) == 1 and found.rejected == [{"row": "voice002", "reason": "no 'Diagnosis:' line in voice002-info.txt"}]


def test_manifest_without_label_column_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"path": ["a.wav"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SourceError, match="'label' column"):
        read_labels(tmp_path / "m.csv", max_file_bytes=10**6)


def test_voiced_adapter_labels_every_record(voiced_dir: Path) -> None:
    found = read_voiced_labels(voiced_dir, max_file_bytes=10**8)
    rows = found.rows
    assert len(rows) == 208 and not found.rejected and not found.conflicts
    assert sum(row.label for row in rows) == 151
    first = min(rows, key=lambda row: row.subject_id)
    assert first.subject_id == "voice001" and first.path.endswith("voice001.hea")
    assert first.metadata == {"diagnosis": "hyperkinetic dysphonia", "age": 32, "gender": "m"}  # voice001-info.txt's
    assert sum(row.metadata["gender"] == "f" for row in rows) == 136 and all(isinstance(row.metadata["age"], int) for row in rows)
