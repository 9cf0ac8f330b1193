"""Turn a SOURCE (folder, glob, manifest or single file) into content-addressed file references."""

from __future__ import annotations

import csv
import errno
import fnmatch
import hashlib
import itertools
import math
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from features.wfdb import wfdb_signal_files
from tasks.label_values import label_name
from voxflow.errors import SourceError

if TYPE_CHECKING:
    import pyarrow as pa

# What libsndfile reads (soundfile.available_formats()) under its usual names, and WFDB records by their header.
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf", ".w64", ".au", ".hea"})
# Audio that phones, browsers and dictation apps write and libsndfile cannot read: named, so that it gets converted.
UNREADABLE_AUDIO_SUFFIXES = frozenset({".m4a", ".aac", ".webm", ".wma", ".amr", ".3gp"})
NAMED_IGNORED = 5  # ignored files a run names
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
MANIFEST_SUFFIXES = PARQUET_SUFFIXES | {".csv"}
GLOB_CHARS = frozenset("*?[")
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileRef:
    """One audio file to analyse, named by the sha256 of its bytes (and of its WFDB signal files)."""

    path: str
    sha256: str
    size_bytes: int
    subject_id: str | None = None
    label: str | None = None

    def listing(self) -> dict[str, str | None]:
        """The fields every record of this file keeps (prediction, feature row, quarantine): its path, content, and
        the subject_id and label it was listed with."""
        return {"path": self.path, "audio_sha256": self.sha256, "subject_id": self.subject_id, "reference_label": self.label}


@dataclass(frozen=True)
class Rejection:
    """A file that could not enter the batch, and why; with the subject_id and label a manifest listed it with."""

    path: str
    stage: str
    reason: str
    error_class: str
    subject_id: str | None = None
    reference_label: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """A file with the same content as one listed before it: in the batch, analysed in its place, or in an earlier
    run (``scored_in``), whose prediction stands for it."""

    ref: FileRef
    first: FileRef
    scored_in: str | None = None

    @property
    def differences(self) -> list[str]:
        """The manifest fields this file was listed with that differ from the first file's, with both values (its own first).

        A file scored before under the same name differs only where this listing gives a value: a folder re-run of
        files a manifest listed says nothing new.
        """
        pairs = (("subject_id", self.ref.subject_id, self.first.subject_id), ("label", self.ref.label, self.first.label))
        relisted = self.scored_in is not None and self.ref.path == self.first.path
        return [f"{name} ({_shown(own)} vs {_shown(theirs)})" for name, own, theirs in pairs if own != theirs and not (relisted and own is None)]

    @property
    def reason(self) -> str:
        """Why the file is not analysed itself, naming the file that is (or was) and, when they differ, what each was listed with.

        Examples
        --------
        >>> first = FileRef("/in/m1.wav", "ab" * 32, 44, "S1", "healthy")
        >>> Duplicate(FileRef("/in/m1_copy.wav", "ab" * 32, 44, "S2", "healthy"), first).reason
        'same content as /in/m1.wav, with another subject_id (S2 vs S1): analysed once, under that name; check the manifest'
        >>> Duplicate(replace(first, path="/in/again.wav"), first).reason
        'same content as /in/m1.wav: analysed once, under that name'
        >>> Duplicate(replace(first, path="/in/p42.wav"), first, scored_in="6bf4d0bc-0c41-4d6e").reason
        'same content as /in/m1.wav, scored in run 6bf4d0bc: not scored again'
        >>> Duplicate(replace(first, label="pathological"), first, scored_in="6bf4d0bc-0c41-4d6e").reason
        'already scored in run 6bf4d0bc, with another label (pathological vs healthy): its prediction keeps the ones it was scored with; check the manifest'
        """
        same_path = self.ref.path == self.first.path
        differs = f", with another {' and '.join(self.differences)}" if self.differences else ""
        check = "; check the manifest" if self.differences else ""
        if self.scored_in is not None:
            run = f"run {self.scored_in[:8]}"
            if same_path:
                return f"already scored in {run}{differs}: its prediction keeps the ones it was scored with{check}"
            return f"same content as {self.first.path}, scored in {run}{differs}: not scored again{check}"
        what = "the same file listed again" if same_path else f"same content as {self.first.path}"
        where = "" if same_path else ", under that name"
        return f"{what}{differs}: analysed once{where}{check}"


def scored_before(ref: FileRef, listing: Mapping[str, Any]) -> Duplicate | None:
    """A file this model already scored, as a duplicate of that prediction when this listing tells something the
    prediction does not: another name, or a subject_id or label it was not scored with; None when it is the same
    listing again (a re-run).

    Parameters
    ----------
    ref : FileRef
        The file as listed now.
    listing : Mapping
        How its prediction was listed: ``path``, ``subject_id``, ``reference_label``, ``run_id``.

    Examples
    --------
    >>> ref = FileRef("/in/m1.wav", "ab" * 32, 44)
    >>> scored_before(ref, {"path": "/in/m1.wav", "subject_id": "S1", "reference_label": "healthy", "run_id": "r1"}) is None
    True
    >>> scored_before(replace(ref, path="/in/p42.wav"), {"path": "/in/m1.wav", "run_id": "r1"}).reason
    'same content as /in/m1.wav, scored in run r1: not scored again'
    """
    # Read as a manifest's label is now: a prediction stored before labels were (``Pathological``) is no other label.
    stored_label = listing.get("reference_label")
    first = FileRef(listing["path"], ref.sha256, ref.size_bytes, listing.get("subject_id"), label_name(stored_label) or stored_label)
    duplicate = Duplicate(ref, first, scored_in=str(listing.get("run_id")))
    return duplicate if ref.path != first.path or duplicate.differences else None


def _shown(value: str | None) -> str:
    return "missing" if value is None else value


@dataclass(frozen=True)
class Candidate:
    path: Path
    subject_id: str | None = None
    label: str | None = None
    unread_label: str | None = None  # why a manifest's label was not kept (the file is analysed all the same)


@dataclass
class Discovery:
    """What a source holds: files to analyse, files rejected up front, repeats of a file's content, and the
    files of a folder or glob left aside (not audio voxflow reads), and the manifest labels not read (one line each)."""

    files: list[FileRef] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    unread_labels: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return len(self.files) + len(self.rejected) + len(self.duplicates)


def is_audio(path: Path) -> bool:
    """True for names voxflow decodes (WFDB records are named by their ``.hea`` header), whitespace after the suffix
    left out: no listing shows it.

    Examples
    --------
    >>> is_audio(Path("/in/take 1.WAV ")), is_audio(Path("/in/rec.dat"))
    (True, False)
    """
    return path.suffix.lower().rstrip() in AUDIO_SUFFIXES


def is_macos_metadata(path: Path) -> bool:
    """True for what macOS leaves beside files in archives and on other disks: AppleDouble files
    (``._clip.wav``, the resource fork of ``clip.wav``, no audio) and everything in a ``__MACOSX`` folder."""
    return path.name.startswith("._") or "__MACOSX" in path.parts[:-1]


def _walked_audio(path: Path) -> bool:
    # A glob's wildcards match no hidden name (so no '._clip.wav'); a folder walk leaves macOS metadata aside as well.
    return is_audio(path) and not is_macos_metadata(path)


def ignored_summary(ignored: Sequence[str]) -> str:
    """One line on the files a folder or glob left aside: how many of each kind, and the first few names.

    Examples
    --------
    >>> ignored_summary(["/in/notes.txt", "/in/a.m4a", "/in/._a.wav", "/in/b.m4a", "/in/README"])
    'ignored 5 files, not audio voxflow reads (.m4a 2, .txt 1, macOS metadata 1, no suffix 1): notes.txt, a.m4a, ._a.wav, b.m4a, README'
    """
    paths = list(map(Path, ignored))
    return f"ignored {len(paths)} file{'s' * (len(paths) != 1)}, not audio voxflow reads ({_tally(paths)}): {_first_names(paths)}"


def unreadable_audio(ignored: Sequence[str]) -> str:
    """One line naming the ignored files that are audio in formats voxflow cannot read; '' when there are none.

    Examples
    --------
    >>> unreadable_audio(["/in/a.m4a", "/in/notes.txt", "/in/b.webm", "/in/c.M4A"])
    '3 audio files in formats voxflow cannot read (.m4a 2, .webm 1): convert to wav or flac: a.m4a, b.webm, c.M4A'
    """
    audio = [Path(p) for p in ignored if Path(p).suffix.lower() in UNREADABLE_AUDIO_SUFFIXES]
    if not audio:
        return ""
    return f"{len(audio)} audio file{'s' * (len(audio) != 1)} in formats voxflow cannot read ({_tally(audio)}): convert to wav or flac: {_first_names(audio)}"


def _tally(paths: Sequence[Path]) -> str:
    kinds = ("macOS metadata" if is_macos_metadata(p) else p.suffix.lower() or "no suffix" for p in paths)
    return ", ".join(f"{kind} {n}" for kind, n in Counter(kinds).most_common())


def _first_names(paths: Sequence[Path]) -> str:
    return ", ".join(p.name for p in paths[:NAMED_IGNORED]) + (", ..." if len(paths) > NAMED_IGNORED else "")


def _is_wfdb_signal(path: Path) -> bool:
    # os.path.exists: a header that cannot be reached (a folder listed but not entered) is no reason to stop the walk.
    return path.suffix.lower() == ".dat" and os.path.exists(path.with_suffix(".hea"))


def _list_folder(folder: Path, seen_dirs: set[tuple[int, int]]) -> list[os.DirEntry]:
    """A folder's entries by name; none for a folder walked before (a directory link loop)."""
    stat = folder.stat()
    if (stat.st_dev, stat.st_ino) in seen_dirs:
        return []
    seen_dirs.add((stat.st_dev, stat.st_ino))
    return sorted(os.scandir(folder), key=lambda e: e.name)


def _walk(root: Path, seen_dirs: set[tuple[int, int]]) -> Iterator[Path | Rejection]:
    """Yield every entry below ``root``, following directory links once, and a Rejection for each folder that cannot be read."""
    try:
        entries = _list_folder(root, seen_dirs)
    except OSError as exc:
        yield Rejection(str(root), "discover", f"folder not readable: {_explain_folder(exc)}", type(exc).__name__)
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=True):
                yield from _walk(path, seen_dirs)
                continue
        except OSError:
            pass  # broken links and loops are files to the caller, which explains them
        yield path


def _glob(pattern: str) -> Iterator[Path]:
    """Paths matching a glob pattern, as ``glob.iglob(pattern, recursive=True)`` finds them, walked loop-safe.

    ``*``, ``?`` and ``[...]`` match within one name, none starting with ``.`` unless the pattern part does;
    ``**`` as a whole part matches any folders below, hidden ones excepted. Unlike :mod:`glob`, directory
    links are followed as :func:`_walk` follows them: each real folder is listed once per part of the
    pattern, so link loops end and no file is listed twice. A folder that cannot be read matches nothing.

    Parameters
    ----------
    pattern : str
        Absolute, or relative to the working folder (the matches are then relative too).

    Yields
    ------
    Path
        Each match (folders too), in name order within each folder.
    """
    parts = Path(pattern).parts
    # The folder before the first wildcard is entered directly; the last part is always looked for in its folder.
    literal = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), len(parts) - 1)
    return _glob_from(Path(*parts[:literal]), parts[literal:], defaultdict(set))


def _glob_from(folder: Path, parts: tuple[str, ...], seen_dirs: defaultdict[int, set[tuple[int, int]]]) -> Iterator[Path]:
    if not parts:
        yield folder
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        yield from _glob_from(folder, rest, seen_dirs)  # no folder at all (before the listing: a folder may be entered, not read)
    try:
        entries = _list_folder(folder, seen_dirs[len(parts)])
    except OSError:
        return  # as glob: a folder that cannot be read matches nothing
    for entry in entries:
        if entry.name.startswith(".") and not head.startswith("."):
            continue  # as glob: a wildcard matches no hidden name
        path = folder / entry.name  # not entry.path: a relative pattern's matches start without './'
        if head != "**":
            if fnmatch.fnmatch(entry.name, head):
                yield from _glob_from(path, rest, seen_dirs)
        elif _is_folder(entry):
            yield from _glob_from(path, parts, seen_dirs)
        elif not rest:
            yield path


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:  # a link loop or a target that cannot be looked at
        return False


def _folder_candidates(root: Path) -> tuple[list[Candidate], list[Rejection], list[Path]]:
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    ignored: list[Path] = []
    for item in _walk(root, set()):
        if isinstance(item, Rejection):
            rejected.append(item)
        elif _walked_audio(item):
            candidates.append(Candidate(item))
        elif not _is_wfdb_signal(item):
            ignored.append(item)
    return candidates, rejected, ignored


def _glob_candidates(pattern: str) -> tuple[list[Candidate], list[Path]]:
    matches = sorted(_glob(pattern))
    # A match inside a folder that cannot be entered is a file hashing rejects (see list_source).
    files = [p for p in matches if not os.path.isdir(p)]
    audio = [Candidate(p) for p in files if _walked_audio(p)]
    return audio, [p for p in files if not _walked_audio(p) and not _is_wfdb_signal(p)]


MANIFEST_COLUMNS = ("path", "subject_id", "label")


def read_manifest(path: Path) -> tuple[list[Candidate], list[Rejection]]:
    """Read a CSV or Parquet manifest with a ``path`` column and optional ``subject_id``, ``label``.

    Columns are found by :func:`manifest_columns`, paths read by :func:`manifest_path` (as written, made
    absolute), a ``subject_id`` or ``label`` by :func:`manifest_field`; CSV cells are read as text. A label is
    kept as :func:`tasks.label_values.label_name` reads it (``pathological``/``healthy``); one it cannot read
    leaves the row without a label, its file still analysed, and says why in ``Candidate.unread_label``. A row
    without a path is rejected with its row number (it names no file, yet someone wrote it); a row with
    nothing in it is passed over.
    """
    table = manifest_table(path)
    columns = _path_columns(path, table.column_names)

    def cells(name: str) -> list[object]:
        return table.column(columns[name]).to_pylist() if name in columns else [None] * table.num_rows

    paths = [manifest_path(value, path.parent) for value in cells("path")]
    subjects, labels = [list(map(manifest_field, cells(name))) for name in ("subject_id", "label")]
    names = [label and label_name(label) for label in labels]
    candidates = [
        Candidate(path=listed, subject_id=subject, label=name, unread_label=_unread_label(path, index, label, name))
        for index, (listed, subject, label, name) in enumerate(zip(paths, subjects, labels, names)) if listed is not None
    ]
    pathless = [index for index, listed in enumerate(paths) if listed is None]
    values = [column.to_pylist() for column in table.columns] if pathless else []
    rejected = [
        Rejection(f"{path} (row {index + 1})", "discover", f"manifest row {index + 1} has no path", "SourceError", subjects[index], labels[index])
        for index in pathless
        if any(not _missing(column[index]) and column[index] != "" for column in values)
    ]
    return candidates, rejected


def _unread_label(manifest: Path, index: int, label: str | None, name: str | None) -> str | None:
    if label is None or name is not None:
        return None
    return f"{manifest} (row {index + 1}): label {label!r} is not 0/1 nor pathological/healthy: its file is scored without a reference label"


def manifest_columns(manifest: Path, names: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    """The column each of the ``known`` names is read from, for every manifest reader: a column matches
    a known name with surrounding whitespace stripped, in any case (``Path``, `` subject_id`` after a comma).

    Raises
    ------
    SourceError
        When two columns match one known name (``path`` and ``Path``).

    Examples
    --------
    >>> manifest_columns(Path("m.csv"), ["Path", " Subject_ID", "site"], MANIFEST_COLUMNS)
    {'path': 'Path', 'subject_id': ' Subject_ID'}
    """
    matched: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if (key := str(name).strip().lower()) in known:
            matched[key].append(name)
    for key, same in matched.items():
        if len(same) > 1:
            written = f" ({', '.join(map(repr, same))})" if len(set(same)) > 1 else ""
            raise SourceError(f"manifest {manifest} has {len(same)} '{key}' columns{written}; keep one")
    return {key: same[0] for key, same in matched.items()}


def _path_columns(path: Path, names: list[str]) -> dict[str, str]:
    if not names:
        raise SourceError(f"manifest {path} is empty (no header line)")
    columns = manifest_columns(path, names, MANIFEST_COLUMNS)
    if "path" not in columns:
        raise SourceError(f"manifest {path} has no 'path' column (columns: {', '.join(names)})")
    return columns


def manifest_field(value: object) -> str | None:
    """A manifest cell as text with surrounding whitespace stripped (``S1 `` is ``S1``); None when it is
    missing, blank or NA-like (``NA``, ``null``, ``nan``...), as pandas would read it.

    Examples
    --------
    >>> manifest_field(" S1 "), manifest_field(7), manifest_field(" NA"), manifest_field(float("nan"))
    ('S1', '7', None, None)
    """
    if _missing(value):
        return None
    text = str(value).strip()
    return None if text in _NA_TEXT else text


def manifest_path(value: object, folder: Path) -> Path | None:
    """A manifest cell's path, as written (a file may be called ``NA``, or end with a space) but for a
    leading ``~``, made absolute against the manifest's ``folder`` as a SOURCE is: ``..`` taken out, links
    kept as named; None for an empty cell.

    A ``~name`` naming no user (``~take1.wav``, as Office names its lock files) is a file name.

    Examples
    --------
    >>> manifest_path("../audio/./x.wav", Path("/data/manifests")), manifest_path("/in/x.wav", Path("/data")), manifest_path("", Path("/data"))
    (PosixPath('/data/audio/x.wav'), PosixPath('/in/x.wav'), None)
    >>> manifest_path("~nobody-such-user-here/x.wav", Path("/data"))
    PosixPath('/data/~nobody-such-user-here/x.wav')
    """
    if _missing(value) or value == "":
        return None
    # os.path's expanduser leaves a name it cannot expand as it is; pathlib's raises RuntimeError.
    return Path(os.path.abspath(folder / os.path.expanduser(str(value))))


def _manifest_columns(path: Path) -> list[str]:
    """A manifest's column names, from a CSV's header line or a Parquet file's schema."""
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except Exception as exc:  # pyarrow raises many types for a bad file; a binary file fails to decode
        raise SourceError(f"manifest {path} could not be read: {exc}") from exc


def manifest_table(path: Path) -> "pa.Table":
    """A Parquet manifest's table, or a CSV manifest's with every cell as the text written (empty cells
    too): its readers decide what counts as missing.

    Raises
    ------
    SourceError
        When the file cannot be read as a manifest.
    """
    # pyarrow rather than pandas, whose import (~0.6 s) would run in every analyze of a manifest while the workers wait;
    # imported here because the CLI imports this module before it starts the workers' forkserver.
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pq.read_table(path)
        as_text = pa_csv.ConvertOptions(column_types={name: pa.string() for name in _manifest_columns(path)}, strings_can_be_null=False)
        return pa_csv.read_csv(path, convert_options=as_text)
    except SourceError:
        raise
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise SourceError(f"manifest {path} could not be read: {exc}") from exc


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# What pandas (and pyarrow's CSV reader, by default) read as a missing value.
_NA_TEXT = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def list_source(source: str) -> tuple[list[Candidate], list[Rejection], list[str]]:
    """Candidates, up-front rejections and the files of a folder or glob left aside, for a SOURCE.

    A file whose name is not valid UTF-8 is rejected (no store can hold the name as it is); the
    rejection, and an ignored file's name, show the undecodable bytes escaped.

    Raises
    ------
    SourceError
        When the source does not exist or a manifest is malformed.
    """
    candidates, rejected, ignored = _listed(source)
    named = [c for c in candidates if _is_utf8(str(c.path))]
    unnamed = [
        replace(_rejected(c, "its name is not valid UTF-8 (rename the file)", "UnicodeEncodeError"), path=_printable(c.path))
        for c in candidates if not _is_utf8(str(c.path))
    ]
    return named, [replace(r, path=_printable(r.path)) for r in rejected] + unnamed, list(map(_printable, ignored))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the surrogates that stand for undecodable bytes of an OS file name
        return False
    return True


def _printable(path: str | Path) -> str:
    """A file name as text any store holds: undecodable bytes as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def given_path(text: str, *, what: str = "SOURCE") -> Path:
    """A path a user gave, ``~`` expanded.

    Raises
    ------
    SourceError
        When ``text`` is empty: ``Path('')`` is the current folder, which nobody meant. When it is not valid
        UTF-8: no store, Prefect parameter or printed line can hold it (a file so named inside a folder is
        rejected alike).
    """
    if not text:
        raise SourceError(f"{what} is empty (''): name a file or folder")
    if not _is_utf8(text):
        raise SourceError(f"{what} {_printable(text)} is not valid UTF-8: rename it, or name it in UTF-8")
    return Path(os.path.expanduser(text))  # pathlib's raises RuntimeError for a ~name that is no user


def recorded_source(source: str) -> str:
    """SOURCE as a run records it: absolute against the current folder, ``~`` expanded, links kept as named
    (a glob's pattern too), so that it names the same files whichever folder it is read from; an empty one as given.
    """
    try:
        return os.path.abspath(given_path(source))
    except SourceError:
        return source


def _listed(source: str) -> tuple[list[Candidate], list[Rejection], list[Path]]:
    # Absolute (links kept as named): the stores must name files that can be found from anywhere.
    path = Path(os.path.abspath(given_path(source)))
    # os.path's tests answer False where Path's raise: a glob inside a folder that cannot be entered is no error.
    if os.path.isdir(path):
        return _folder_candidates(path)
    if os.path.isfile(path) and path.suffix.lower() in MANIFEST_SUFFIXES:
        candidates, rejected = read_manifest(path)
        return candidates, rejected, []
    if os.path.isfile(path):
        if not is_audio(path):
            raise _not_audio(source, path)
        return [Candidate(path)], [], []
    if GLOB_CHARS & set(source):
        candidates, ignored = _glob_candidates(str(path))
        if not candidates and not ignored:
            raise SourceError(f"no files match {source}")
        return candidates, [], ignored
    raise _no_source(source, path)


def _not_audio(source: str, path: Path) -> SourceError:
    """Why SOURCE, a regular file, cannot be listed; a WFDB signal file is read through its header."""
    hint = f"; a WFDB record is read from its header: name {path.with_suffix('.hea')}" if path.suffix.lower() == ".dat" else ""
    return SourceError(f"{source} is not an audio file, folder or manifest (.csv/.parquet){hint}")


def _no_source(source: str, path: Path) -> SourceError:
    """Why SOURCE, neither a folder, a regular file nor a glob that matches, cannot be listed."""
    if os.path.exists(path):
        return SourceError(f"{source} is not a regular file or folder (a device, pipe or socket): name an audio file, a folder or a manifest")
    spaces = _spaces_note(path)
    return SourceError(f"source not found: {source}" + (f"; {spaces}" if spaces else ""))


def count_listed(source: str, *, limit: int) -> int:
    """About how many files discovery will list for SOURCE, counted no further than ``limit``: a quick look, not a listing.

    A folder or glob is walked until ``limit`` audio names are seen; a CSV manifest's lines are counted
    (unparsed: a quoted line break counts as a row), a Parquet manifest's rows read from its footer. A
    source that cannot be read counts 0: discovery says why.
    """
    path = Path(os.path.expanduser(source))
    try:
        if os.path.isdir(path):
            found: Iterator[object] = (item for item in _walk(path, set()) if isinstance(item, Path) and _walked_audio(item))
        elif os.path.isfile(path) and path.suffix.lower() in MANIFEST_SUFFIXES:
            return min(limit, _manifest_rows(path, limit))
        elif os.path.isfile(path):
            return 1
        else:
            found = (match for match in _glob(str(path)) if _walked_audio(match))
        return sum(1 for _ in itertools.islice(found, limit))
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return 0


def _manifest_rows(path: Path, limit: int) -> int:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in itertools.islice(handle, limit + 1)) - 1)  # less the header


def check_source(source: str, *, lists_paths: bool = True) -> None:
    """Fail fast, before any server starts, when SOURCE names nothing at all, a file voxflow cannot read
    as audio or manifest, or a manifest whose columns are wrong (read from its header alone).

    ``lists_paths`` False: a label manifest, which may name its audio by ``sha256`` instead of ``path``
    (its columns are checked when it is read).

    Raises
    ------
    SourceError
        When the path is empty, or does not exist and, as a glob, matches nothing; or is such a file.
    """
    path = given_path(source)
    if os.path.isfile(path) and path.suffix.lower() in MANIFEST_SUFFIXES:
        columns = _manifest_columns(path)
        if lists_paths:
            _path_columns(path, columns)
        return
    if not lists_paths and os.path.exists(path):
        raise SourceError(f"{source} is {'a folder' if os.path.isdir(path) else 'no manifest'}: name a CSV/Parquet manifest")
    if os.path.isfile(path) and not is_audio(path):
        raise _not_audio(source, path)
    if os.path.isfile(path) or os.path.isdir(path):
        return
    if os.path.exists(path) or not GLOB_CHARS & set(source):
        raise _no_source(source, path)
    if next(_glob(str(path)), None) is None:
        raise SourceError(f"no files match {source}")


class Unreadable(OSError):
    """A file discovery will not read, the reason said in words (``str(exc)``)."""


def content_hash(path: Path, *, max_bytes: int) -> tuple[str, int]:
    """sha256 of a file streamed in 1 MiB blocks; for a WFDB header, of the header and its signal files.

    Returns
    -------
    (hex digest, total bytes hashed)

    Raises
    ------
    Unreadable
        When the files hold more than ``max_bytes`` (counted as read, too: a file may grow), or a signal
        file is not a regular file (a link to /dev/zero would be read forever).
    """
    companions = wfdb_signal_files(path) if path.suffix.lower() == ".hea" else []
    # A missing WFDB signal file is left to the decoder, which names the record in its reason.
    parts = [path] + [p for p in companions if p.exists()]
    for part in parts[1:]:
        if not part.is_file():
            raise Unreadable(f"its signal file {part.name} is not a regular file (a folder, device, pipe or socket)")
    digest, total = hashlib.sha256(), 0
    for part in parts:
        total += part.stat().st_size
        _check_size(total, max_bytes)
    total = 0
    for part in parts:
        with part.open("rb") as handle:
            while block := handle.read(HASH_BLOCK):
                total += len(block)
                _check_size(total, max_bytes)
                digest.update(block)
    return digest.hexdigest(), total


def _check_size(total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise Unreadable(f"file too large: {total / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB limit")


def _explain(path: Path, exc: OSError) -> str:
    if isinstance(exc, Unreadable):
        return str(exc)
    if exc.errno == errno.ELOOP:
        return "symlink loop: the link resolves to itself"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"broken symlink: target {os.readlink(path)} does not exist"
    if exc.errno == errno.ENOENT:
        return ": ".join(filter(None, ["file not found", _spaces_note(path)]))
    if exc.errno in (errno.EACCES, errno.EPERM) and not os.access(path.parent, os.X_OK):
        return f"permission denied: its folder {path.parent} cannot be entered by this user"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: the file is not readable by this user"
    return f"cannot read file: {exc.strerror or exc}"


def _spaces_note(path: Path) -> str:
    """Which name of a path starts or ends with whitespace, which no table shows ('' when none does).

    Examples
    --------
    >>> _spaces_note(Path("/in/x.wav ")), _spaces_note(Path("/in/ x.wav")), _spaces_note(Path("/in/ ../x.wav"))
    ("the path ends with a space ('x.wav ')", "the file name starts with a space (' x.wav')", "the folder name ' ..' starts with a space")
    """
    for depth, part in enumerate(reversed(path.parts)):
        if part == part.strip():
            continue
        ends = part != part.rstrip()
        space = "a space" if (part[-1] if ends else part[0]) == " " else "whitespace"
        if depth:
            return f"the folder name {part!r} {'ends' if ends else 'starts'} with {space}"
        return f"the path ends with {space} ({part!r})" if ends else f"the file name starts with {space} ({part!r})"
    return ""


def _explain_folder(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def hash_candidate(candidate: Candidate, max_bytes: int) -> FileRef | Rejection:
    """Hash one candidate, or say in words why it cannot be read (a folder, pipe, missing file, NUL byte...)."""
    try:
        if candidate.path.is_dir():
            return _rejected(candidate, "a folder, not a file (list its files, or analyse the folder itself)", "IsADirectoryError")
        if not candidate.path.is_file() and candidate.path.exists():
            return _rejected(candidate, "not a regular file (device, pipe or socket)", "OSError")
        sha, size = content_hash(candidate.path, max_bytes=max_bytes)
    except OSError as exc:
        return _rejected(candidate, _explain(candidate.path, exc), type(exc).__name__)
    except ValueError as exc:  # a path no system call accepts, e.g. with a NUL byte from a manifest or the queue
        return _rejected(candidate, f"invalid path: {exc}", type(exc).__name__)
    return FileRef(str(candidate.path), sha, size, candidate.subject_id, candidate.label)


def _rejected(candidate: Candidate, reason: str, error_class: str) -> Rejection:
    return Rejection(str(candidate.path), "discover", reason, error_class, candidate.subject_id, candidate.label)


def hash_threads() -> int:
    """Hashing threads: two per core, at most 32 (reads and hashlib release the GIL; files may sit on network storage)."""
    return min(32, 2 * (os.cpu_count() or 1))


def discover(source: str, *, max_file_bytes: int, threads: int | None = None) -> Discovery:
    """List, stat and hash every audio file of a SOURCE; the same content twice is analysed once, under the first name listed.

    Parameters
    ----------
    source : str
        A folder (recursive), a glob, a CSV/Parquet manifest or one audio file.
    max_file_bytes : int
        Files larger than this are rejected before they are read.
    threads : int, optional
        Hashing threads; default :func:`hash_threads`.
    """
    candidates, rejected, ignored = list_source(source)
    return hash_candidates(candidates, rejected=rejected, ignored=ignored, max_file_bytes=max_file_bytes, threads=threads)


def hash_candidates(
    candidates: Sequence[Candidate], *, rejected: Sequence[Rejection] = (), ignored: Sequence[str] = (), max_file_bytes: int, threads: int | None = None
) -> Discovery:
    """Hash explicit candidates (e.g. paths taken from the queue) into a Discovery.

    Of the candidates with the same content, the first listed is analysed; each later one is a Duplicate of it.
    Empty files are not: each is analysed, and quarantined, on its own (they share no recording).
    """
    found = Discovery(rejected=list(rejected), ignored=list(ignored), unread_labels=[c.unread_label for c in candidates if c.unread_label])
    firsts: dict[str, FileRef] = {}
    with ThreadPoolExecutor(max_workers=threads or hash_threads()) as pool:
        for outcome in pool.map(lambda c: hash_candidate(c, max_file_bytes), candidates):
            if isinstance(outcome, Rejection):
                found.rejected.append(outcome)
            elif outcome.size_bytes == 0:
                found.files.append(outcome)
            elif outcome.sha256 in firsts:
                found.duplicates.append(Duplicate(outcome, firsts[outcome.sha256]))
            else:
                firsts[outcome.sha256] = outcome
                found.files.append(outcome)
    return found


def chunked(files: Sequence[FileRef], size: int) -> list[list[FileRef]]:
    """Split into consecutive chunks of at most ``size`` files (the unit of Dask work)."""
    return [list(files[i : i + size]) for i in range(0, len(files), size)]
