"""Feature matrices for labelled audio: the Parquet feature store first, Dask extraction for what is missing."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np
from distributed import Client, Future, as_completed

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from store.feature_store import FeatureStore
from tasks.chunk import AudioPolicy, rows_to_table
from tasks.cluster import first_worker_joined
from tasks.extract import extract_chunk
from tasks.fanout import is_file_specific, split_or_reject
from tasks.ingest import Candidate, FileRef, chunked, hash_candidates
from tasks.labels import LabelledAudio
from tasks.progress import Progress
from voxflow.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Rows in audio_sha256 order: features (FEATURE_NAMES columns), 0/1 labels, subject groups."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    hashes: list[str]
    from_store: int = 0
    extracted: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)

    @property
    def data_hash(self) -> str:
        """sha256 of the (audio_sha256, label) pairs: the same labelled data gives the same hash."""
        text = "\n".join(f"{sha}:{label}" for sha, label in zip(self.hashes, self.labels))
        return hashlib.sha256(text.encode()).hexdigest()


def extract_on_cluster(client: Client, refs: Sequence[FileRef], settings: Settings) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Feature rows and rejections of ``refs``, a chunk at a time as the cluster finishes it (the analyze code path),
    with a progress line (files done, rate, time left) at most every 2 s. A file that kept killing the workers that
    ran it is rejected (stage ``worker``) and the rest of its chunk extracted, as :func:`tasks.fanout.fan_out` does.

    Raises
    ------
    ClusterError
        When no worker joined the cluster within ``settings.dask_worker_start_timeout_s`` (its tasks would wait forever).
    """
    if not refs:
        return
    first_worker_joined(client, timeout_s=settings.dask_worker_start_timeout_s)
    policy = AudioPolicy.from_settings(settings)
    chunks: dict[Future, list[FileRef]] = {}
    tracker = as_completed()

    def submit(chunk: list[FileRef]) -> None:
        future = client.submit(extract_chunk, chunk, policy, pure=False)
        chunks[future] = chunk
        tracker.add(future)

    for chunk in chunked(refs, settings.chunk_size):
        submit(chunk)
    progress = Progress(total=len(refs))
    for future in tracker:
        chunk = chunks.pop(future)  # no longer held here: its result leaves the worker's memory once used
        if future.status == "error" and is_file_specific(exc := future.exception()):
            again, lost = split_or_reject(chunk, exc)  # a file that kills its workers is rejected, the rest extracted
            for files in again:
                submit(files)
            if not lost:
                continue
            result: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], lost)
        else:
            result = future.result()  # any other task error is the cluster's: raised
        progress.advance(len(chunk))
        if progress.due():
            log.info("Extracting features: %s", progress.line())
        yield result


def labelled_files(rows: Sequence[LabelledAudio], *, max_file_bytes: int) -> tuple[list[FileRef], list[dict[str, str]]]:
    """The files of the ``rows`` with a path that still hold the audio labelled, and the others with the reason.

    Returns
    -------
    tuple
        The files, hashed again; and ``{"audio_sha256", "path", "reason"}`` for each file unreadable or changed since its label was read.
    """
    candidates = [Candidate(Path(row.path), subject_id=row.subject_id) for row in rows if row.path]
    found = hash_candidates(candidates, max_file_bytes=max_file_bytes)
    wanted = {row.sha256 for row in rows}
    dropped = [{"audio_sha256": "", "path": r.path, "reason": r.reason} for r in found.rejected]
    changed = [ref for ref in found.files if ref.sha256 not in wanted]
    dropped += [{"audio_sha256": "", "path": ref.path, "reason": "file changed since its label was read"} for ref in changed]
    return [ref for ref in found.files if ref.sha256 in wanted], dropped


def _extract_missing(rows: Sequence[LabelledAudio], settings: Settings, client: Client, store: FeatureStore) -> tuple[dict[str, list[float]], list[dict[str, str]]]:
    refs, dropped = labelled_files(rows, max_file_bytes=int(settings.max_file_mb * 1e6))
    run_id = f"training-{uuid.uuid4().hex[:12]}"
    features: dict[str, list[float]] = {}
    for chunk_id, (chunk_rows, rejected) in enumerate(extract_on_cluster(client, refs, settings)):
        dropped += [{"audio_sha256": r["audio_sha256"], "path": r["path"], "reason": r["reason"]} for r in rejected]
        if chunk_rows:
            store.write_chunk(rows_to_table(chunk_rows), feature_version=FEATURE_VERSION, run_id=run_id, chunk_id=chunk_id)
        features.update({row["audio_sha256"]: [row[name] for name in FEATURE_NAMES] for row in chunk_rows})
    return features, dropped


def training_set(rows: Sequence[LabelledAudio], settings: Settings, *, open_client: Callable[[], ContextManager[Client]] | None = None) -> TrainingSet:
    """Features of every labelled row at the current FEATURE_VERSION.

    Features come from the feature store (written by analyze runs); rows it lacks are extracted on
    Dask workers, when their file is still readable and unchanged, and written back to the store.

    Parameters
    ----------
    open_client : callable, optional
        Opens a Dask client (``lambda: dask_client(settings)``), called only when some rows must be
        extracted; without it those rows are dropped.
    """
    store = FeatureStore(settings.feature_store_dir)
    wanted = {row.sha256 for row in rows}
    known = store.read(feature_version=FEATURE_VERSION, columns=["audio_sha256", *FEATURE_NAMES], hashes=wanted).set_index("audio_sha256")
    features = {sha: list(values) for sha, values in zip(known.index, known[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))}
    missing = [row for row in rows if row.sha256 not in features]
    extractable = [row for row in missing if row.path]
    dropped = [{"audio_sha256": row.sha256, "path": "", "reason": "not in the feature store and no path to extract from"} for row in missing if not row.path]
    extracted: dict[str, list[float]] = {}
    if extractable and open_client is not None:
        with open_client() as client:
            extracted, failed = _extract_missing(extractable, settings, client, store)
        dropped += failed
    else:
        dropped += [{"audio_sha256": row.sha256, "path": row.path or "", "reason": "not in the feature store"} for row in extractable]
    features.update(extracted)
    kept = sorted((row for row in rows if row.sha256 in features), key=lambda row: row.sha256)
    return TrainingSet(
        features=np.array([features[row.sha256] for row in kept], dtype=np.float64).reshape(len(kept), len(FEATURE_NAMES)),
        labels=np.array([row.label for row in kept], dtype=np.int32),
        groups=np.array([row.subject_id or row.sha256 for row in kept]),
        hashes=[row.sha256 for row in kept],
        from_store=len(kept) - len(extracted),
        extracted=len(extracted),
        dropped=dropped,
    )
