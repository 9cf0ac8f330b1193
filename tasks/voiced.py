"""The VOICED database (PhysioNet) as a labelled manifest: one WFDB record per subject."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from voxflow.errors import SourceError

_DIAGNOSIS = re.compile(r"^Diagnosis:\s*(.+?)\s*$", re.MULTILINE)
_AGE = re.compile(r"^Age:\s*(\d+)\s*$", re.MULTILINE)
_GENDER = re.compile(r"^Gender:\s*([mf])\s*$", re.MULTILINE | re.IGNORECASE)


def voiced_manifest(folder: Path) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Manifest rows (path, subject_id, label, diagnosis, age, gender) for every record of a VOICED folder.

    ``path`` is the record's header, absolute; ``label`` is ``healthy`` when the diagnosis says so
    and ``pathological`` otherwise; ``age`` (years) and ``gender`` (``m``/``f``) are None where the file lacks them.

    Returns
    -------
    (frame, skipped)
        ``skipped`` holds ``{"row", "reason"}`` for each record without a Diagnosis line or a header.

    Raises
    ------
    SourceError
        When the folder does not exist or holds no usable ``voiceNNN-info.txt`` file.
    """
    if not folder.is_dir():
        raise SourceError(f"VOICED folder {folder} not found" if not folder.exists() else f"{folder} is not a folder")
    folder = Path(os.path.abspath(folder))  # links kept as named, as discovery keeps them
    rows, skipped = [], []
    for info in sorted(folder.glob("voice*-info.txt")):
        record = info.name.removesuffix("-info.txt")
        text = info.read_text(errors="replace")
        match = _DIAGNOSIS.search(text)
        if match is None:
            skipped.append({"row": record, "reason": f"no 'Diagnosis:' line in {info.name}"})
            continue
        if not (folder / f"{record}.hea").exists():
            skipped.append({"row": record, "reason": f"no {record}.hea next to {info.name}"})
            continue
        diagnosis = match.group(1).strip().lower()
        age, gender = _AGE.search(text), _GENDER.search(text)
        rows.append(
            {
                "path": str(folder / f"{record}.hea"),
                "subject_id": record,
                "label": "healthy" if diagnosis == "healthy" else "pathological",
                "diagnosis": diagnosis,
                "age": int(age.group(1)) if age else None,
                "gender": gender.group(1).lower() if gender else None,
            }
        )
    if not rows:
        first = f" ({len(skipped)} skipped, the first {skipped[0]['row']}: {skipped[0]['reason']})" if skipped else ""
        raise SourceError(f"{folder} holds no VOICED records (voiceNNN-info.txt with a Diagnosis line next to voiceNNN.hea){first}")
    return pd.DataFrame(rows), skipped
