"""The unit of Dask work: decode, gate, featurise and score one chunk of files on a worker."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Sequence

import numpy as np

from features.audio import decode_audio
from features.extract import extract_features, feature_flags
from features.quality import quality_gate
from models.artifact import ModelBundle, score
from models.drift import profile_counts
from tasks.chunk import AudioPolicy, ChunkResult, rows_to_table
from tasks.deadline import time_limit
from tasks.ingest import FileRef
from voxflow.errors import VoxflowError


def analyse_file(ref: FileRef, policy: AudioPolicy) -> dict[str, Any]:
    """Decode, gate and featurise one file into a row (features in FEATURE_NAMES order).

    Raises
    ------
    VoxflowError
        With the stage and reason that the quarantine records.
    """
    with time_limit(policy.file_timeout_s, what=os.path.basename(ref.path)):
        started = time.perf_counter()
        audio = decode_audio(ref.path, target_rate=policy.sample_rate, max_duration_s=policy.max_duration_s)
        decoded = time.perf_counter()
        flags = quality_gate(
            audio,
            min_duration_s=policy.min_duration_s,
            max_duration_s=policy.max_duration_s,
            silence_dbfs=policy.silence_dbfs,
            clipping_fraction=policy.clipping_fraction,
        )
        features = extract_features(audio)
        done = time.perf_counter()
    return {
        **ref.listing(),
        "size_bytes": ref.size_bytes,
        "duration_s": audio.duration_s,
        "source_rate": audio.source_rate,
        "channels": audio.channels,
        "quality_flags": [*flags, *feature_flags(features)],
        "decode_ms": round((decoded - started) * 1e3, 2),
        "features_ms": round((done - decoded) * 1e3, 2),
        **features,
    }


def _rejection(ref: FileRef, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, VoxflowError):
        stage, reason = exc.stage, exc.reason
    else:  # a bug or a library surprise: keep the batch going, keep the evidence
        stage, reason = "features", f"unexpected {type(exc).__name__}: {exc}"
    return {**ref.listing(), "stage": stage, "reason": reason, "error_class": type(exc).__name__}


def extract_chunk(files: Sequence[FileRef], policy: AudioPolicy) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Analyse every file of a chunk; one bad file never stops the others.

    Returns
    -------
    (rows, rejected)
    """
    rows, rejected = [], []
    for ref in files:
        try:
            rows.append(analyse_file(ref, policy))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a quarantine record
            rejected.append(_rejection(ref, exc))
    return rows, rejected


def score_chunk(chunk_id: int, files: Sequence[FileRef], policy: AudioPolicy, bundle: ModelBundle) -> ChunkResult:
    """Analyse a chunk and score it with one XGBoost call; runs on a Dask worker."""
    started = time.perf_counter()
    rows, rejected = extract_chunk(files, policy)
    matrix = np.array([[row[name] for name in bundle.card.feature_names] for row in rows], dtype=np.float64)
    matrix = matrix.reshape(len(rows), len(bundle.card.feature_names))
    scored = score(bundle, matrix)
    for row, value, label, factors in zip(rows, scored.scores, scored.labels, scored.top_factors):
        row.update(score=float(value), label=label, top_factors=json.dumps(factors))
    return ChunkResult(
        chunk_id=chunk_id,
        table=rows_to_table(rows),
        rejected=rejected,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        wall_s=time.perf_counter() - started,
        input_counts=profile_counts(bundle.card.input_profile, matrix, bundle.card.feature_names) if bundle.card.input_profile else None,
    )
