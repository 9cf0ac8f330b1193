"""Parquet feature store: one file per chunk, partitioned by feature version and run; compacted into parts."""

from __future__ import annotations

import glob
import logging
import os
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MERGED_FOLDER = "merged"
ROW_GROUP_ROWS = 16_384  # ~13 MB of features: a merge holds one per schema in memory, a filtered read decodes one at a time
READ_BATCH_ROWS = 8_192
READ_ATTEMPTS = 3  # listings read again when a file listed was merged away meanwhile
STALE_TMP_S = 86_400.0  # a writer touches its temporary file at each row group: one untouched for a day is a crash's
PROGRESS_EVERY_S = 10.0
IDENTITY_COLUMNS = ("audio_sha256", "path", "subject_id")  # what says whose recording a row is


def _by_write_time(paths: Iterable[Path]) -> list[tuple[Path, os.stat_result]]:
    """``paths`` with their stat, the oldest written first; a file gone meanwhile (merged by a compaction) is left out."""
    dated = []
    for path in paths:
        try:
            dated.append((path, path.stat()))
        except FileNotFoundError:
            continue
    return sorted(dated, key=lambda item: (item[1].st_mtime_ns, str(item[0])))


def _check_run_id(run_id: str) -> None:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise ValueError(f"run_id {run_id!r} cannot name a partition folder")


def _run_of(path: Path) -> str | None:
    """The run a chunk file's folder names (``run_id=R``); None for a merged part, whose rows carry theirs."""
    folder = path.parent.name
    return folder.removeprefix("run_id=") if folder.startswith("run_id=") else None


def _rows_of(path: Path, columns: list[str] | None, only: pa.Array) -> pa.Table:
    """The rows of a file whose ``audio_sha256`` is in ``only``, kept as each batch of ``READ_BATCH_ROWS`` is read.

    Raises
    ------
    pyarrow.ArrowInvalid
        When the file lacks one of ``columns`` (which ``iter_batches`` would leave out without a word).
    """
    # Neither read ahead nor decoded by threads: either way the read held 200 MB of Arrow memory, against 60 (20,000-row groups).
    with pq.ParquetFile(path, pre_buffer=False) as parquet:
        stored = parquet.schema_arrow
        names = stored.names if columns is None else columns
        missing = [name for name in names if name not in stored.names]
        if missing:
            raise pa.ArrowInvalid(f"no column {', '.join(missing)}")
        batches = [batch.filter(pc.is_in(batch.column("audio_sha256"), value_set=only)) for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=names, use_threads=False)]
        return (pa.Table.from_batches(batches) if batches else stored.empty_table()).select(names)


def _read_file(path: Path, columns: list[str] | None, only: pa.Array | None = None) -> pa.Table | None:
    """A chunk's or part's table (the rows of ``only``'s contents, when given) with its rows' ``run_id`` column,
    or None (with a warning naming the file) when it cannot be read."""
    run_id = _run_of(path)
    stored = columns if columns is None or run_id is None else [name for name in columns if name != "run_id"]
    try:
        table = pq.read_table(path, columns=stored) if only is None else _rows_of(path, stored, only)
    except FileNotFoundError:
        raise  # gone since it was listed: merged by a compaction, not unreadable
    except (pa.ArrowException, OSError) as exc:
        log.warning("feature store file %s is unreadable, skipped (its recordings are extracted again where their files are at hand; delete it to stop this warning): %s", path, exc)
        return None
    if run_id is not None and (columns is None or "run_id" in columns) and "run_id" not in table.column_names:
        table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    elif run_id is None and "run_id" in table.column_names:
        table = table.set_column(table.column_names.index("run_id"), "run_id", table["run_id"].cast(pa.string()))
    return table


def _as_part_rows(table: pa.Table) -> pa.Table:
    """A chunk's table as a part stores it: its ``run_id`` column dictionary-encoded, the type pandas and pyarrow
    give the ``run_id=R`` folders of the chunks beside it, so that they read the version's folder whole."""
    return table.set_column(table.column_names.index("run_id"), "run_id", table["run_id"].dictionary_encode())


def _remove_stale_temporaries(version: Path) -> int:
    """Delete the hidden temporary files of writers that crashed (untouched for ``STALE_TMP_S``); how many."""
    removed = 0
    for path in [*version.glob("run_id=*/.chunk-*.tmp"), *version.glob(f"{MERGED_FOLDER}/.part-*.tmp")]:
        try:
            if time.time() - path.stat().st_mtime > STALE_TMP_S:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # its writer renamed it, or another compaction removed it
            continue
    return removed


def _chunk_id(path: Path) -> int:
    """The id in a chunk file's name (``chunk-00007.parquet`` -> 7)."""
    return int(path.name.removeprefix("chunk-").removesuffix(".parquet"))


@dataclass(frozen=True)
class Compaction:
    """What :meth:`FeatureStore.compact` did: chunk files merged (and deleted), their rows, the parts written, files left unreadable."""

    feature_version: int
    merged: int
    rows: int
    parts: tuple[Path, ...]
    unreadable: int
    stale_removed: int = 0

    def line(self) -> str:
        """What was done, in one line.

        Examples
        --------
        >>> Compaction(4, 2000, 96000, (Path("merged/part-1.parquet"),), 1).line()
        'feature version 4: merged 2000 chunk files (96000 rows) into 1 part; 1 unreadable chunk file left as it was'
        >>> Compaction(4, 0, 0, (), 0, stale_removed=1).line()
        'feature version 4: fewer than 2 chunk files, nothing to merge; 1 stale temporary file removed'
        """
        if not self.merged:
            done = "fewer than 2 chunk files, nothing to merge" if not self.unreadable else "nothing readable to merge"
        else:
            done = f"merged {self.merged} chunk files ({self.rows} rows) into {len(self.parts)} part{'s' if len(self.parts) != 1 else ''}"
        left = f"; {self.unreadable} unreadable chunk file{'s' if self.unreadable != 1 else ''} left as {'it was' if self.unreadable == 1 else 'they were'}" if self.unreadable else ""
        if self.stale_removed:
            left += f"; {self.stale_removed} stale temporary file{'s' if self.stale_removed != 1 else ''} removed"
        return f"feature version {self.feature_version}: {done}{left}"


@dataclass(frozen=True)
class Erased:
    """What :meth:`FeatureStore.forget` removed (or, in a dry run, found): rows, files rewritten without them, files
    removed whole, the files it could not read, which may still hold such rows, and the rows' contents."""

    rows: int = 0
    rewritten: int = 0
    removed: int = 0
    unreadable: tuple[Path, ...] = ()
    hashes: frozenset[str] = frozenset()  # the contents of the rows


def _identity_columns_of(path: Path) -> pa.Table:
    """The :data:`IDENTITY_COLUMNS` a file holds (a chunk of an older voxflow may lack some), and only those."""
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=[name for name in IDENTITY_COLUMNS if name in parquet.schema_arrow.names])


def _wanted(*, hashes: Collection[str] = (), paths: Collection[str] = (), subjects: Collection[str] = ()) -> dict[str, pa.Array]:
    """The values :func:`_whose` looks for, by identity column."""
    return {name: pa.array(sorted(set(values)), pa.string()) for name, values in zip(IDENTITY_COLUMNS, (hashes, paths, subjects))}


def _whose(table: pa.Table | pa.RecordBatch, wanted: dict[str, pa.Array]) -> pa.ChunkedArray | pa.Array:
    """True for each row of ``table`` whose identity column (``audio_sha256``, ``path``, ``subject_id``) holds one of
    ``wanted``'s values for that column; columns the table lacks match nothing."""
    found = pa.array([False] * table.num_rows)
    for name, values in wanted.items():
        if name in table.column_names and len(values):
            found = pc.or_(found, pc.fill_null(pc.is_in(table[name], value_set=values), False))
    return found


def _rewrite_without(path: Path, wanted: dict[str, pa.Array]) -> None:
    """Rewrite ``path`` without the rows ``wanted`` names, streaming, under a hidden temporary name renamed over it;
    the file keeps its write time, which orders :meth:`FeatureStore.read`."""
    stat = path.stat()
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with pq.ParquetFile(path, pre_buffer=False) as parquet, pq.ParquetWriter(tmp, parquet.schema_arrow) as writer:
            for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS, use_threads=False):
                writer.write_table(pa.Table.from_batches([batch.filter(pc.invert(_whose(batch, wanted)))], schema=parquet.schema_arrow))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


class _PartWriter:
    """One merged part being written under a hidden name: tables of one schema, in row groups of ``ROW_GROUP_ROWS``."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        self.tmp = folder / f".{self.path.name}.{os.getpid()}.tmp"
        self.writer = pq.ParquetWriter(self.tmp, schema)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.newest_ns = 0

    def add(self, table: pa.Table, written_ns: int) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.newest_ns = max(self.newest_ns, written_ns)
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            table = pa.concat_tables(self.pending)
            self.writer.write_table(table, row_group_size=table.num_rows)
            self.rows += table.num_rows
            self.pending, self.pending_rows = [], 0

    def close(self) -> Path:
        """Write what is pending, then show the part under its name, dated as its newest chunk (read()'s order)."""
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)
        os.utime(self.path, ns=(self.newest_ns, self.newest_ns))
        return self.path

    def discard(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


class FeatureStore:
    """Feature tables under ``root/feature_version=N/run_id=R/chunk-00007.parquet``, compacted into ``root/feature_version=N/merged/part-*.parquet``.

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
        path = folder / f"chunk-{chunk_id:05d}.parquet"
        # A leading dot keeps half-written files out of read()'s chunk-*.parquet glob.
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        for attempt in (1, 2):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                pq.write_table(table, tmp)
                break
            except FileNotFoundError:  # a compaction removed the run's emptied folder in between: once
                if attempt == 2:
                    raise
        os.replace(tmp, path)
        return path

    def versions(self) -> list[int]:
        """The feature versions the store holds a folder for, in order."""
        names = (path.name.removeprefix("feature_version=") for path in self.root.glob("feature_version=*") if path.is_dir())
        return sorted(int(name) for name in names if name.isdigit())

    def inventory(self, *, feature_version: int) -> dict[str, int]:
        """What ``feature_version`` holds: ``chunk_files``, the ``runs`` they belong to, merged ``parts``, and ``bytes`` in all."""
        files = self.dated_files(feature_version=feature_version)
        chunks = [path for path, _ in files if _run_of(path) is not None]
        return {
            "feature_version": feature_version, "chunk_files": len(chunks), "runs": len({path.parent for path in chunks}),
            "parts": len(files) - len(chunks), "bytes": sum(stat.st_size for _, stat in files),
        }

    def dated_files(self, *, feature_version: int) -> list[tuple[Path, os.stat_result]]:
        """Every chunk file and merged part of ``feature_version`` with its stat, the oldest written first."""
        version = self.root / f"feature_version={feature_version}"
        # Chunks first: a compaction puts its part in place before it deletes its chunks, so a listing that
        # misses the chunks (deleted) lists the part.
        chunks = list(version.glob("run_id=*/chunk-*.parquet"))
        return _by_write_time([*chunks, *version.glob(f"{MERGED_FOLDER}/part-*.parquet")])

    def files(self, *, feature_version: int) -> list[Path]:
        """Every chunk file and merged part of ``feature_version``, the oldest written first."""
        return [path for path, _ in self.dated_files(feature_version=feature_version)]

    def read(self, *, feature_version: int, columns: Sequence[str] | None = None, hashes: Collection[str] | None = None) -> pd.DataFrame:
        """Every readable chunk and part of ``feature_version``, one row per audio_sha256 (the most recently written wins).

        A file that cannot be read (truncated, not Parquet, lacking a column) is skipped with a warning:
        its rows read as missing, as if never stored. Each row's ``run_id`` is a column. With ``hashes``,
        only the rows of those contents, filtered as each batch of rows is read: memory then holds those
        rows, not the store (a retrain's labelled recordings among millions of stored clips).

        Returns
        -------
        pandas.DataFrame
            The requested ``columns`` (all when None); empty when nothing readable was written for that version.
        """
        import pandas as pd  # here: the flow process only writes

        wanted = None if columns is None else list(dict.fromkeys(["audio_sha256", *columns]))
        only = None if hashes is None else pa.array(sorted(hashes), pa.string())
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                tables = [table for table in (_read_file(path, wanted, only) for path in self.files(feature_version=feature_version)) if table is not None]
                break
            except FileNotFoundError:  # a compaction merged a file listed: its rows are in a part listed now
                if attempt == READ_ATTEMPTS:
                    raise
        if not tables:
            return pd.DataFrame(columns=list(columns or []))
        table = pa.concat_tables(tables, promote_options="default")
        frame = table.to_pandas().drop_duplicates("audio_sha256", keep="last").reset_index(drop=True)
        return frame if columns is None else frame[list(columns)]

    def _identity_tables(self) -> Iterator[tuple[Path, pa.Table | None]]:
        """Each file of every feature version with its identity columns; None for a file that cannot be read (with a warning)."""
        for version in self.versions():
            for path in self.files(feature_version=version):
                try:
                    yield path, _identity_columns_of(path)
                except FileNotFoundError:  # merged away since it was listed: its rows are in a part listed after it
                    continue
                except (pa.ArrowException, OSError) as exc:
                    log.warning("feature store file %s is unreadable, so it could not be searched for the recordings to forget (delete it): %s", path, exc)
                    yield path, None

    def listed_under(
        self, *, paths: Collection[str] = (), subjects: Collection[str] = (), folders: Collection[str] = ()
    ) -> set[tuple[str | None, ...]]:
        """(``audio_sha256``, ``path``, ``subject_id``) of the rows, of every feature version, stored under one of
        ``paths``, ``subjects`` or ``folders`` (each ending in a slash: a path that starts with one; None for a column a
        file lacks)."""
        if not paths and not subjects and not folders:
            return set()
        wanted = _wanted(paths=paths, subjects=subjects)
        found: set[tuple[str | None, ...]] = set()
        for _, table in self._identity_tables():
            if table is not None:
                matched = _whose(table, wanted)
                for folder in folders if "path" in table.column_names else ():
                    matched = pc.or_(matched, pc.fill_null(pc.starts_with(table["path"], pattern=folder), False))
                rows = table.filter(matched)
                found |= set(zip(*(rows[name].to_pylist() if name in rows.column_names else [None] * rows.num_rows for name in IDENTITY_COLUMNS)))
        return found

    def forget(self, *, hashes: Collection[str], paths: Collection[str] = (), subjects: Collection[str] = (), dry_run: bool = False) -> Erased:
        """Remove every row, of every feature version, whose ``audio_sha256``, ``path`` or ``subject_id`` is one of
        these: each chunk file or part holding such rows is rewritten without them (removed when nothing is left).

        Hold the store's lock (``store.locks.FEATURE_STORE_LOCK``) around it: a compaction merging a file meanwhile would keep its rows.
        A file that cannot be read is left as it is and named in the result (with a warning): it may hold such rows.

        Parameters
        ----------
        dry_run : bool
            Count the rows and files only; change nothing.
        """
        wanted = _wanted(hashes=hashes, paths=paths, subjects=subjects)
        rows = rewritten = removed = 0
        unreadable: list[Path] = []
        contents: set[str] = set()
        for path, table in self._identity_tables():
            if table is None:
                unreadable.append(path)
                continue
            matched = _whose(table, wanted)
            found = pc.sum(matched).as_py() or 0
            if not found:
                continue
            contents.update(table.filter(matched)["audio_sha256"].to_pylist())
            rows += found
            whole = found == table.num_rows
            removed += whole
            rewritten += not whole
            if dry_run:
                continue
            if whole:
                path.unlink()
            else:
                _rewrite_without(path, wanted)
        return Erased(rows, rewritten, removed, tuple(unreadable), frozenset(contents))

    def compact(self, *, feature_version: int, min_files: int = 2) -> Compaction:
        """Merge the chunk files of ``feature_version`` into one part per schema under ``merged/``, then delete them.

        Reading pays per file (5-10 ms each here, whatever its rows): a run writes one per chunk and a
        queue drain one run a minute, so a store of millions of clips is read many times faster merged.
        The merge streams, one row group at a time, so it needs no more memory for a large store. Each
        row keeps its run's id (a column), and the rows their written order; a part is dated as its
        newest chunk, so :meth:`read` keeps the same row per audio_sha256 (but where another run wrote
        the same content in between: features equal, only the path and labels listed may differ).

        Safe beside runs that write: only the files merged are deleted, once their part is in place,
        and a stop or a failure before that leaves them as they were, at most a hidden temporary file
        (a crash between the two leaves rows in both, which :meth:`read` reads once). A read that lists a
        chunk this merges away lists again; a chunk another compaction merges meanwhile is left to it. Chunks of
        different columns (written by another voxflow version) go to separate parts, so a column one
        lacks still reads as missing. Unreadable chunks are left in place, with a warning each. The
        temporary files of writers that crashed (untouched for a day) are deleted.

        Parameters
        ----------
        min_files : int
            Merge only when at least this many chunk files are there.
        """
        version = self.root / f"feature_version={feature_version}"
        stale = _remove_stale_temporaries(version)
        chunks = _by_write_time(version.glob("run_id=*/chunk-*.parquet"))
        if len(chunks) < min_files:
            return Compaction(feature_version, 0, 0, (), 0, stale)
        (version / MERGED_FOLDER).mkdir(parents=True, exist_ok=True)
        parts: dict[pa.Schema, _PartWriter] = {}
        merged: list[Path] = []
        unreadable = 0
        next_report = time.monotonic() + PROGRESS_EVERY_S
        with ExitStack() as unfinished:
            for done, (path, stat) in enumerate(chunks):
                if time.monotonic() >= next_report:
                    log.info("feature version %d: merging chunk files, %d of %d (%.0f%%)", feature_version, done, len(chunks), 100 * done / len(chunks))
                    next_report += PROGRESS_EVERY_S
                try:
                    table = _read_file(path, None)
                except FileNotFoundError:  # merged by another compaction meanwhile
                    continue
                if table is None:
                    unreadable += 1
                    continue
                table = _as_part_rows(table)
                if table.schema not in parts:
                    parts[table.schema] = _PartWriter(version / MERGED_FOLDER, table.schema)
                    unfinished.callback(parts[table.schema].discard)
                parts[table.schema].add(table, stat.st_mtime_ns)
                merged.append(path)
            written = tuple(part.close() for part in parts.values())
            unfinished.pop_all()
        for path in merged:
            path.unlink(missing_ok=True)
        for folder in {path.parent for path in merged}:
            try:
                folder.rmdir()
            except OSError:  # not empty: a run still writing there
                pass
        return Compaction(feature_version, len(merged), sum(part.rows for part in parts.values()), written, unreadable, stale)
