"""Stored records out to a CSV or Parquet file for analysts' own tools, written in batches."""

from __future__ import annotations

import errno
import json
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

_WHEN = pa.timestamp("ms", tz="UTC")
PREDICTION_EXPORT: Mapping[str, pa.DataType] = {
    "path": pa.string(), "audio_sha256": pa.string(), "subject_id": pa.string(), "reference_label": pa.string(),
    "score": pa.float64(), "label": pa.string(), "threshold": pa.float64(), "model_version": pa.string(),
    "feature_version": pa.int32(), "quality_flags": pa.string(), "top_factors": pa.string(), "duration_s": pa.float64(),
    "sample_rate": pa.int32(), "channels": pa.int32(), "size_bytes": pa.int64(), "run_id": pa.string(), "created_at": _WHEN,
}
QUARANTINE_EXPORT: Mapping[str, pa.DataType] = {
    "path": pa.string(), "audio_sha256": pa.string(), "subject_id": pa.string(), "reference_label": pa.string(),
    "stage": pa.string(), "reason": pa.string(), "error_class": pa.string(), "run_id": pa.string(), "created_at": _WHEN,
}


def flat_value(value: Any, kind: pa.DataType) -> Any:
    """One stored value as a flat file holds it: a list of names joined by ``;``, other nested values
    as JSON, anything else in a text column as text.

    Examples
    --------
    >>> flat_value(["clipped", "short"], pa.string())
    'clipped;short'
    >>> flat_value([{"feature": "hnr_mean_db", "impact": -0.2}], pa.string())
    '[{"feature": "hnr_mean_db", "impact": -0.2}]'
    """
    if value is None or not pa.types.is_string(kind):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ";".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def export_records(records: Iterable[dict[str, Any]], path: Path, columns: Mapping[str, pa.DataType], *, batch_rows: int = 1000) -> int:
    """Write ``records`` to ``path`` (``.csv`` or ``.parquet``) with ``columns`` in that order; return the rows written.

    The file appears whole or not at all: rows go to a hidden file beside it, renamed at the end.

    Raises
    ------
    ValueError
        When ``path`` names another format.
    OSError
        When ``path`` is a folder or its folder does not exist (before any record is read).
    """
    opened = _WRITERS.get(path.suffix.lower())
    if opened is None:
        raise ValueError(f"cannot export to {path.name}: name a {' or '.join(_WRITERS)} file")
    if path.is_dir():  # found before the rows are read, not at the final rename
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(path.parent))
    schema = pa.schema(list(columns.items()))
    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    try:
        with opened(partial, schema) as write:
            remaining = iter(records)
            while batch := list(islice(remaining, batch_rows)):
                write(pa.Table.from_pylist([{name: flat_value(doc.get(name), kind) for name, kind in columns.items()} for doc in batch], schema=schema))
                rows += len(batch)
            if rows == 0:
                write(schema.empty_table())  # the header alone
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


@contextmanager
def _csv(path: Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    with pyarrow.csv.CSVWriter(str(path), schema) as writer:
        yield writer.write_table


@contextmanager
def _parquet(path: Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    with pyarrow.parquet.ParquetWriter(str(path), schema) as writer:
        yield writer.write_table


_WRITERS = {".csv": _csv, ".parquet": _parquet}
EXPORT_FORMATS = tuple(_WRITERS)
