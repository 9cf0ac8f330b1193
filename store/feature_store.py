"""Parquet feature store: one file per chunk, partitioned by feature version and run."""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _written_order(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, str(path)


def _check_run_id(run_id: str) -> None:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise ValueError(f"run_id {run_id!r} cannot name a partition folder")


def _read_chunk(path: Path, columns: list[str] | None) -> pa.Table | None:
    """One chunk's table, or None (with a warning naming the file) when it cannot be read."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        log.warning("feature store chunk %s is unreadable, skipped (its recordings are extracted again where their files are at hand; delete it to stop this warning): %s", path, exc)
        return None


def _chunk_id(path: Path) -> int:
    """The id in a chunk file's name (``chunk-00007.parquet`` -> 7)."""
    return int(path.name.removeprefix("chunk-").removesuffix(".parquet"))


class FeatureStore:
    """Feature tables under ``root/feature_version=N/run_id=R/chunk-00007.parquet``.

    Parameters
    ----------
    root : Path
        Folder of the store (``settings.feature_store_dir``); created on first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._next_chunk_ids: dict[str, int] = {}

    def new_chunk_id(self, run_id: str) -> int:
        """A chunk id not yet used in ``run_id``, by this store or by the files of the run already written.

        A chunk file with a used id would replace that chunk's features; ids continue across every
        fan-out of a run (the batches of a queue drain) and after a run resumed under the same id.
        """
        _check_run_id(run_id)
        if run_id not in self._next_chunk_ids:
            written = self.root.glob(f"feature_version=*/run_id={glob.escape(run_id)}/chunk-*.parquet")
            self._next_chunk_ids[run_id] = 1 + max(map(_chunk_id, written), default=-1)
        chunk_id = self._next_chunk_ids[run_id]
        self._next_chunk_ids[run_id] += 1
        return chunk_id

    def write_chunk(self, table: pa.Table, *, feature_version: int, run_id: str, chunk_id: int) -> Path:
        """Write one chunk's features atomically (temporary file, then rename); returns the file written."""
        _check_run_id(run_id)
        folder = self.root / f"feature_version={feature_version}" / f"run_id={run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"chunk-{chunk_id:05d}.parquet"
        # A leading dot keeps half-written files out of read()'s chunk-*.parquet glob.
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path

    def read(self, *, feature_version: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every readable chunk of ``feature_version``, one row per audio_sha256 (the most recently written wins).

        A chunk that cannot be read (truncated, not Parquet, lacking a column) is skipped with a warning:
        its rows read as missing, as if never stored.

        Returns
        -------
        pandas.DataFrame
            The requested ``columns`` (all when None); empty when nothing readable was written for that version.
        """
        import pandas as pd  # here: the flow process only writes

        files = sorted(self.root.glob(f"feature_version={feature_version}/run_id=*/chunk-*.parquet"), key=_written_order)
        wanted = None if columns is None else list(dict.fromkeys(["audio_sha256", *columns]))
        tables = [table for table in (_read_chunk(path, wanted) for path in files) if table is not None]
        if not tables:
            return pd.DataFrame(columns=list(columns or []))
        table = pa.concat_tables(tables, promote_options="default")
        frame = table.to_pandas().drop_duplicates("audio_sha256", keep="last").reset_index(drop=True)
        return frame if columns is None else frame[list(columns)]
