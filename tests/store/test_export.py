"""Exports: stored documents to CSV or Parquet, flattened, in batches, whole or not at all."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from store.export import PREDICTION_EXPORT, QUARANTINE_EXPORT, export_records

WHEN = datetime(2026, 11, 28, 3, 13, 27, 284000, tzinfo=timezone.utc)


def _prediction(i: int) -> dict:
    return {
        "audio_sha256": f"{i:064x}", "path": f"clips/ü {i}.wav", "subject_id": i, "score": i / 10_000, "label": "healthy",
        "quality_flags": ["clipped", "short"] if i % 2 else [], "top_factors": [{"feature": "hnr_mean_db", "contribution": -0.2}],
        "feature_version": 3, "sample_rate": 16_000, "created_at": WHEN, "timings_ms": {"decode": 1.0},
    }


def _read(path: Path) -> list[dict]:
    return (pacsv.read_csv(str(path)) if path.suffix == ".csv" else pq.read_table(str(path))).to_pylist()


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_every_record_is_written_flat_in_its_column(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert export_records((_prediction(i) for i in range(2_345)), path, PREDICTION_EXPORT, batch_rows=1000) == 2_345
    rows = _read(path)
    assert len(rows) == 2_345 and list(rows[0]) == list(PREDICTION_EXPORT)
    first, odd = rows[0], rows[1]
    assert first["path"] == "clips/ü 0.wav" and odd["quality_flags"] == "clipped;short" and first["quality_flags"] in ("", None)
    assert json.loads(first["top_factors"]) == [{"feature": "hnr_mean_db", "contribution": -0.2}]
    assert first["created_at"] == WHEN and odd["score"] == pytest.approx(1e-4)
    assert str(odd["subject_id"]) == "1" and first["threshold"] is None  # a missing field is an empty cell
    if name.endswith(".parquet"):
        assert pq.read_schema(str(path)).field("subject_id").type == pa.string()


def test_no_match_writes_the_header_alone(tmp_path: Path) -> None:
    assert export_records([], tmp_path / "none.csv", QUARANTINE_EXPORT) == 0
    assert (tmp_path / "none.csv").read_text().strip() == ",".join(f'"{name}"' for name in QUARANTINE_EXPORT)


def test_a_failed_export_leaves_no_file_and_the_old_one_untouched(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    path.write_text("yesterday's export\n")

    def broken() -> Iterator[dict]:
        yield from (_prediction(i) for i in range(1_500))
        raise ConnectionError("store lost mid-read")

    with pytest.raises(ConnectionError):
        export_records(broken(), path, PREDICTION_EXPORT)
    assert path.read_text() == "yesterday's export\n" and [p.name for p in tmp_path.iterdir()] == ["run.csv"]


def test_another_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"name a \.csv or \.parquet file"):
        export_records([_prediction(0)], tmp_path / "out.xlsx", PREDICTION_EXPORT)


def test_a_folder_or_a_missing_folder_is_refused_before_reading(tmp_path: Path) -> None:
    def untouched() -> Iterator[dict]:
        raise AssertionError("read")
        yield {}

    (tmp_path / "run.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_records(untouched(), tmp_path / "run.csv", PREDICTION_EXPORT)
    with pytest.raises(FileNotFoundError, match=f"no such folder: '{tmp_path / 'nowhere'}'"):
        export_records(untouched(), tmp_path / "nowhere" / "run.csv", PREDICTION_EXPORT)

