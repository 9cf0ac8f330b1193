"""What travels between a flow and its Dask workers: the task and the audio policy out, a chunk's result back.

Kept apart from the worker code (tasks/extract.py), so that the flow process never imports the
feature stack (scipy, librosa, numba: ~1 s of imports per command).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from features.schema import FEATURE_NAMES
from voxflow.settings import Settings

if TYPE_CHECKING:
    from models.artifact import ModelBundle
    from tasks.ingest import FileRef


@dataclass(frozen=True)
class AudioPolicy:
    """The settings a worker needs to decode and gate audio (plain values, cheap to ship)."""

    sample_rate: int
    min_duration_s: float
    max_duration_s: float
    silence_dbfs: float
    clipping_fraction: float
    file_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "AudioPolicy":
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass
class ChunkResult:
    """What one chunk produced: a row per analysed file, and a record per rejected one."""

    chunk_id: int
    table: pa.Table
    rejected: list[dict[str, Any]] = field(default_factory=list)
    worker: str = ""
    wall_s: float = 0.0
    # The scored rows' features counted into the model's profile bins (models.drift.profile_counts); None without a profile.
    input_counts: dict[str, Any] | None = None


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows to an Arrow table with a fixed schema, so empty chunks still carry every column."""
    schema = pa.schema(
        [
            ("audio_sha256", pa.string()),
            ("path", pa.string()),
            ("subject_id", pa.string()),
            ("reference_label", pa.string()),
            ("size_bytes", pa.int64()),
            ("duration_s", pa.float64()),
            ("source_rate", pa.int32()),
            ("channels", pa.int32()),
            ("quality_flags", pa.list_(pa.string())),
            ("decode_ms", pa.float64()),
            ("features_ms", pa.float64()),
            *[(name, pa.float64()) for name in FEATURE_NAMES],
            ("score", pa.float64()),
            ("label", pa.string()),
            ("top_factors", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def score_on_worker(chunk_id: int, files: list["FileRef"], policy: AudioPolicy, model: "ModelBundle") -> ChunkResult:
    """The Dask task: ``tasks.extract.score_chunk``, imported where it runs.

    Dask ships this function by reference, so a worker imports its module to run it: here, rather
    than beside the fan-out, a worker loads no Redis, MongoDB or Prefect client code (~0.3 s of CPU
    per worker start), and the flow process never loads the feature stack.
    """
    from tasks.extract import score_chunk

    return score_chunk(chunk_id, files, policy, model)
