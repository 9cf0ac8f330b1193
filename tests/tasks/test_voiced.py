"""The VOICED adapter: a record per -info.txt with a Diagnosis line and a header, the others counted as skipped."""

from pathlib import Path

import pytest

from tasks.voiced import voiced_manifest
from tests.helpers import voiced_record
from voxflow.errors import SourceError


def test_records_without_a_diagnosis_or_a_header_are_skipped_with_the_reason(tmp_path: Path) -> None:
    voiced_record(tmp_path, "voice001", "healthy")
    voiced_record(tmp_path, "voice002", None)
    voiced_record(tmp_path, "voice003", "reflux laryngitis", header=False)
    frame, skipped = voiced_manifest(tmp_path)
    assert frame.to_dict("records") == [{"path": str(tmp_path / "voice001.hea"), "subject_id": "voice001", "label": "healthy", "diagnosis": "healthy", "age": 40, "gender": None}]
    assert skipped == [
        {"row": "voice002", "reason": "no 'Diagnosis:' line in voice002-info.txt"},
        {"row": "voice003", "reason": "no voice003.hea next to voice003-info.txt"},
    ]


def test_a_folder_of_skipped_records_names_the_first(tmp_path: Path) -> None:
    voiced_record(tmp_path, "voice002", None)
    with pytest.raises(SourceError, match=r"holds no VOICED records .*\(1 skipped, the first voice002: no 'Diagnosis:' line"):
        voiced_manifest(tmp_path)


def test_a_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"VOICED folder {tmp_path / 'nope'} not found"):
        voiced_manifest(tmp_path / "nope")
