"""Labelled audio from manifests and the VOICED adapter: rows keyed by content hash, labels made binary."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from models.artifact import NEGATIVE_LABEL, POSITIVE_LABEL
from tasks.ingest import Candidate, FileRef, Rejection, hash_candidate, manifest_columns, manifest_field, manifest_path, manifest_table
from tasks.label_values import binary_label
from tasks.voiced import voiced_manifest
from voxflow.errors import SourceError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
LABEL_COLUMNS = ("path", "sha256", "audio_sha256", "label", "subject_id")


@dataclass(frozen=True)
class LabelledAudio:
    """One labelled recording: its content hash, 1 for positive (pathological), and where it lies if known."""

    sha256: str
    label: int
    path: str | None = None
    subject_id: str | None = None
    original_label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_doc(self, *, source: str) -> dict[str, Any]:
        """The ``labels`` collection document."""
        return {
            "audio_sha256": self.sha256,
            "label": POSITIVE_LABEL if self.label else NEGATIVE_LABEL,
            "original_label": self.original_label,
            "subject_id": self.subject_id,
            "path": self.path,
            "source": source,
            "metadata": self.metadata,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "LabelledAudio":
        return cls(
            sha256=doc["audio_sha256"], label=int(doc["label"] == POSITIVE_LABEL), path=doc.get("path"),
            subject_id=doc.get("subject_id"), original_label=doc.get("original_label", ""), metadata=doc.get("metadata") or {},
        )


@dataclass
class LabelledRows:
    """What a label source holds: one row per audio, the rows refused with a reason, how many
    audio were listed with rows that disagree on label or subject (each such row is refused),
    the kept rows whose file could not be read, so that their sha256 stood in (``{"row", "reason"}``), and
    the files :func:`read_labels` hashed as it read the rows, by sha256 (the first of each: the one its kept row names)."""

    rows: list[LabelledAudio]
    rejected: list[dict[str, str]]
    conflicts: int = 0
    by_sha256: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, FileRef] = field(default_factory=dict)

    @property
    def negative_labels(self) -> dict[str, int]:
        """How many rows each label value, as written, made negative: an unexpected value shows here."""
        return dict(Counter(row.original_label for row in self.rows if not row.label))


def _metadata_value(value: object) -> object:
    """A metadata cell as stored: text stripped as :func:`tasks.ingest.manifest_field` strips it, an infinite number as None."""
    if isinstance(value, str):
        return value.strip()
    # MongoDB servers may refuse inf (nx-27017 does); a Parquet float column can hold it.
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _one_per_audio(listed: Sequence[tuple[str, LabelledAudio]], rejected: list[dict[str, str]]) -> LabelledRows:
    """The first of an audio's rows when they agree on label and subject; when they disagree, none (each refused)."""
    by_audio: dict[str, list[tuple[str, LabelledAudio]]] = {}
    for where, row in listed:
        by_audio.setdefault(row.sha256, []).append((where, row))
    found = LabelledRows([], rejected)
    for same in by_audio.values():
        if len({(row.label, row.subject_id) for _, row in same}) == 1:
            found.rows.append(same[0][1])
            continue
        found.conflicts += 1
        named = "; ".join(f"{where} (label {row.original_label}, subject {row.subject_id or '-'})" for where, row in same)
        found.rejected += [{"row": where, "reason": f"the same audio is listed with another label or subject: {named}"} for where, _ in same]
    return found


def _check_positive(labels: Sequence[str], positive: str | None) -> None:
    """Refuse a ``positive`` label that no row has: every row would be stored negative (a typo, another spelling).

    Raises
    ------
    SourceError
        Naming the label values the rows have, with their counts.
    """
    if positive is None or not labels or any(binary_label(label, positive=positive) for label in labels):
        return
    seen = ", ".join(f"{label} {n}" for label, n in Counter(labels).most_common())
    raise SourceError(f"--positive {positive!r} matches no label; the labels are: {seen}")


def _row_audio(path: Path | None, sha256: str, max_file_bytes: int) -> tuple[str, FileRef | None, str | None]:
    """(sha256, its file as hashed, why its file was not read) of a manifest row: the hash of its file, or its ``sha256``
    when the file cannot be read (moved, unmounted: the hash alone finds its stored features).

    Raises
    ------
    SourceError
        When neither gives a hash, or the file's hash is not the row's ``sha256`` (the path names other audio).
    """
    given = sha256 if _SHA256.match(sha256) else None
    if path is None:
        if given is None:
            raise SourceError("no readable path and no valid sha256")
        return given, None, None
    hashed = hash_candidate(Candidate(path), max_file_bytes)
    if isinstance(hashed, Rejection):
        if given is None:
            raise SourceError(f"{hashed.path}: {hashed.reason}")
        return given, None, f"{hashed.path}: {hashed.reason}"
    if given is not None and hashed.sha256 != given:
        raise SourceError(f"{hashed.path}: its content's sha256 {hashed.sha256[:12]} differs from the row's sha256 {given[:12]}")
    return hashed.sha256, hashed, None


def read_labels(manifest: Path, *, positive: str | None = None, max_file_bytes: int) -> LabelledRows:
    """Labelled rows of a CSV/Parquet manifest with ``path`` or ``sha256``, ``label``, optional ``subject_id``.

    The manifest is read as ``voxflow analyze`` reads one (:func:`tasks.ingest.manifest_table`): its
    columns matched by :func:`tasks.ingest.manifest_columns`, its cells by :func:`tasks.ingest.manifest_field`
    and a path by :func:`tasks.ingest.manifest_path`: absolute, so a retrain finds it from any folder; files are
    hashed (their content is the key). A row with both a path and a ``sha256`` (or ``audio_sha256``) is keyed by
    that sha256 when its file cannot be read, and refused when the file's hash differs from it. A ``positive``
    label that no row has is refused before any file is read.
    Other columns are kept as metadata (an infinite number as None). The same audio listed twice
    keeps its first row when the rows agree on label and subject, and none when they disagree.

    Returns
    -------
    LabelledRows
        ``rejected`` holds ``{"row", "reason"}`` for rows without a usable label or audio, or in conflict.

    Raises
    ------
    SourceError
        When a column is missing or twice, or ``positive`` matches no row's label.
    """
    table = manifest_table(manifest)
    columns = manifest_columns(manifest, table.column_names, LABEL_COLUMNS)
    hash_column = columns.get("audio_sha256", columns.get("sha256"))
    if "label" not in columns or ("path" not in columns and hash_column is None):
        raise SourceError(f"manifest {manifest} needs a 'label' column and a 'path' or 'sha256' column (columns: {', '.join(table.column_names)})")
    records = table.to_pylist()
    _check_positive([label for record in records if (label := manifest_field(record.get(columns["label"]))) is not None], positive)
    listed: list[tuple[str, LabelledAudio]] = []
    rejected: list[dict[str, str]] = []
    unread: dict[str, dict[str, str]] = {}
    files: dict[str, FileRef] = {}
    for number, record in enumerate(records, start=2):
        where = f"{manifest.name}:{number}"
        raw_label, raw_path = manifest_field(record.get(columns["label"])), manifest_path(record.get(columns.get("path")), manifest.parent)
        if raw_label is None:
            rejected.append({"row": where, "reason": "no label"})
            continue
        try:
            label = binary_label(raw_label, positive=positive)
            sha, hashed, why_unread = _row_audio(raw_path, (manifest_field(record.get(hash_column)) or "").lower(), max_file_bytes)
        except SourceError as exc:
            rejected.append({"row": where, "reason": exc.reason})
            continue
        if why_unread is not None:
            unread[where] = {"row": where, "reason": why_unread}
        if hashed is not None:
            files.setdefault(sha, hashed)
        metadata = {k.strip(): _metadata_value(v) for k, v in record.items() if k not in columns.values() and manifest_field(v) is not None}
        listed.append((where, LabelledAudio(sha, label, hashed.path if hashed else None, manifest_field(record.get(columns.get("subject_id"))), raw_label, metadata)))
    found = _one_per_audio(listed, rejected)
    kept = {id(row) for row in found.rows}
    found.by_sha256 = [unread[where] for where, row in listed if id(row) in kept and where in unread]
    found.files = files
    return found


def _voiced_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """What a VOICED record says of its subject besides the label: diagnosis, age and gender where known."""
    known = {key: record[key] for key in ("diagnosis", "age", "gender") if record[key] is not None and not (isinstance(record[key], float) and math.isnan(record[key]))}
    if "age" in known:
        known["age"] = int(known["age"])  # a column with a missing age holds floats
    return known


def read_voiced_labels(folder: Path, *, max_file_bytes: int) -> LabelledRows:
    """Labelled rows of a VOICED (PhysioNet) folder, from its ``voiceNNN-info.txt`` files; records it skips are rejected rows."""
    frame, rejected = voiced_manifest(folder)
    listed: list[tuple[str, LabelledAudio]] = []
    for record in frame.to_dict("records"):
        hashed = hash_candidate(Candidate(Path(record["path"])), max_file_bytes)
        if isinstance(hashed, Rejection):
            rejected.append({"row": hashed.path, "reason": hashed.reason})
            continue
        row = LabelledAudio(hashed.sha256, binary_label(record["label"]), hashed.path, record["subject_id"], record["label"], _voiced_metadata(record))
        listed.append((hashed.path, row))
    return _one_per_audio(listed, rejected)
