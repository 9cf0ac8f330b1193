"""The VOICED database (PhysioNet) as a labelled manifest: one WFDB record per subject."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from voxflow.errors import SourceError

_DIAGNOSIS = re.compile(r"^Diagnosis:\s*(.+?)\s*$", re.MULTILINE)


def voiced_manifest(folder: Path) -> pd.DataFrame:
    """Manifest rows (path, subject_id, label, diagnosis) for every record of a VOICED folder.

    ``path`` is the record's header, absolute; ``label`` is ``healthy`` when the diagnosis says so
    and ``pathological`` otherwise.

    Raises
    ------
    SourceError
        When the folder holds no ``voiceNNN-info.txt`` files.
    """
    folder = folder.resolve()
    rows = []
    for info in sorted(folder.glob("voice*-info.txt")):
        record = info.name.removesuffix("-info.txt")
        match = _DIAGNOSIS.search(info.read_text(errors="replace"))
        if match is None or not (folder / f"{record}.hea").exists():
            continue
        diagnosis = match.group(1).strip().lower()
        rows.append(
            {
                "path": str(folder / f"{record}.hea"),
                "subject_id": record,
                "label": "healthy" if diagnosis == "healthy" else "pathological",
                "diagnosis": diagnosis,
            }
        )
    if not rows:
        raise SourceError(f"{folder} holds no VOICED records (voiceNNN-info.txt next to voiceNNN.hea)")
    return pd.DataFrame(rows)
