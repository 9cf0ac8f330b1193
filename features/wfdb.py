"""A small reader for PhysioNet WFDB records (header ``.hea`` + signal ``.dat``), enough for voice data.

Supports single-segment records whose signals are stored in formats 16, 24, 32 (little-endian
two's complement) and 80 (8-bit offset binary), several signals interleaved in one file or spread
over several files, byte offsets (``16+512``) and the per-signal checksum. Everything else
(format 212, 310, multi-segment records, several samples per frame, skew) is refused with a reason,
as is a header without a sampling frequency (WFDB would assume 250 Hz, which no voice recording uses).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import DecodeError

SAMPLE_BYTES = {16: 2, 24: 3, 32: 4, 80: 1}
WFDB_FORMATS = frozenset({0, 8, 16, 24, 32, 61, 80, 160, 212, 310, 311, 508, 516, 524})  # all WFDB defines
DEFAULT_GAIN = 200.0  # WFDB's DEFGAIN: a gain of 0 or none means "uncalibrated, 200 adu per unit"
MAX_HEADER_BYTES = 1 << 16
MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems

_FORMAT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_MULTI_SEGMENT = re.compile(r"^[^/]+/\d+$")  # record/segments
_GAIN = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\(([-+]?\d+)\))?(?:/.*)?$")  # gain(baseline)/units


@dataclass(frozen=True)
class WfdbSignal:
    """One signal line of a header."""

    file_name: str
    fmt: int
    byte_offset: int
    gain: float
    baseline: int
    checksum: int | None


@dataclass(frozen=True)
class WfdbHeader:
    """A parsed header; ``n_samples`` is per signal."""

    path: Path
    fs: float
    n_samples: int
    signals: tuple[WfdbSignal, ...]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs


def _fail(path: Path, why: str) -> DecodeError:
    """A header's reason; ``why`` says what is wrong by position and expectation, never quoting the header
    (a text file named .hea may be a patient note, or a link to /etc/shadow)."""
    return DecodeError(f"WFDB header {path.name}: {why}")


def _plain_name(name: str) -> bool:
    """Whether a signal file name is one voxflow looks up next to the header and may name in a reason.

    Not a path, not '-' (standard input), '.' or '..', only printable characters (a reason shows it as
    it is), and no longer than a file name can be: a longer one fails the lookup with an OSError that
    quotes it.
    """
    return (
        name not in ("-", ".", "..")
        and Path(name).name == name
        and name.isprintable()
        and len(name.encode()) <= MAX_NAME_BYTES
    )


def _header_lines(path: Path) -> list[str]:
    with path.open("rb") as handle:
        raw = handle.read(MAX_HEADER_BYTES + 1)
    if not raw:
        raise _fail(path, "empty file (0 bytes)")
    if len(raw) > MAX_HEADER_BYTES or b"\0" in raw:
        raise _fail(path, "not a WFDB header (binary or oversized content)")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _fail(path, "not a WFDB header (non-ASCII bytes)") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _parse_signal(path: Path, number: int, line: str) -> WfdbSignal:
    where = f"signal line {number + 1}"
    fields = line.split(maxsplit=8)
    if len(fields) < 2:
        raise _fail(path, f"{where} has no format field ('file format gain …' expected)")
    file_name, fmt_field = fields[0], fields[1]
    if not _plain_name(file_name):
        raise _fail(
            path,
            f"{where}: its signal file is not a plain file name next to the header "
            f"(a path, '-', control characters or over {MAX_NAME_BYTES} bytes?)",
        )
    match = _FORMAT.match(fmt_field)
    if not match or int(match.group(1)) not in WFDB_FORMATS:
        raise _fail(path, f"{where}: its format field is not a WFDB format number (supported: 16, 24, 32, 80)")
    fmt = int(match.group(1))
    if fmt not in SAMPLE_BYTES:
        raise _fail(path, f"unsupported WFDB format {fmt} (supported: 16, 24, 32, 80)")
    if (match.group(2) and int(match.group(2)) != 1) or (match.group(3) and int(match.group(3)) != 0):
        raise _fail(path, f"{where}: several samples per frame or skew are not supported")
    gain, baseline = DEFAULT_GAIN, None
    if len(fields) > 2:
        gain_match = _GAIN.match(fields[2])
        if not gain_match:
            raise _fail(path, f"{where}: its gain field is not a number, 'gain(baseline)' or 'gain/units'")
        gain = float(gain_match.group(1)) or DEFAULT_GAIN
        baseline = int(gain_match.group(2)) if gain_match.group(2) else None
    try:
        adc_zero = int(fields[4]) if len(fields) > 4 else 0
        checksum = int(fields[6]) if len(fields) > 6 else None
    except ValueError:
        raise _fail(path, f"{where}: its ADC zero or checksum is not an integer") from None
    return WfdbSignal(
        file_name=file_name,
        fmt=fmt,
        byte_offset=int(match.group(4) or 0),
        gain=gain,
        baseline=adc_zero if baseline is None else baseline,
        checksum=checksum,
    )


def read_header(path: str | os.PathLike) -> WfdbHeader:
    """Parse a WFDB header and check that its signal files hold the samples it declares.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.hea`` file; signal files are looked up in the same folder.

    Returns
    -------
    WfdbHeader

    Raises
    ------
    DecodeError
        Malformed header, unsupported format, missing or truncated signal file.
    """
    path = Path(path)
    lines = _header_lines(path)
    if not lines:
        raise _fail(path, "holds only comments")
    record = lines[0].split()
    not_a_record = "line 1 is not 'record nsig fs nsamples' (a text file named .hea?)"
    if len(record) >= 2 and _MULTI_SEGMENT.match(record[0]):
        raise _fail(path, "line 1 declares a multi-segment record ('record/segments'), which is not supported")
    if len(record) < 2 or "/" in record[0]:
        raise _fail(path, not_a_record)
    try:
        n_signals = int(record[1])
        fs = float(record[2].split("/")[0]) if len(record) > 2 else 0.0
        n_samples = int(record[3]) if len(record) > 3 else None
    except ValueError:
        raise _fail(path, not_a_record) from None
    if n_signals < 1:
        raise _fail(path, f"declares {n_signals} signals")
    if n_samples is not None and n_samples < 0:
        raise _fail(path, f"declares a negative number of samples ({n_samples}) on line 1")
    if not math.isfinite(fs) or fs <= 0:  # float() also reads "nan" and "inf"
        raise _fail(path, f"no usable sampling frequency on line 1 ({f'{fs:g}' if len(record) > 2 else 'none given'})")
    if len(lines) < 1 + n_signals:
        raise _fail(path, f"declares {n_signals} signals but has {len(lines) - 1} signal lines")
    signals = tuple(_parse_signal(path, i, line) for i, line in enumerate(lines[1 : 1 + n_signals]))
    for file_name, group in _groups(signals).items():
        if len({s.fmt for s in group}) > 1 or len({s.byte_offset for s in group}) > 1:
            raise _fail(path, f"signals in {file_name} mix formats or byte offsets")
        signal_path = path.with_name(file_name)
        if not signal_path.is_file():
            raise _fail(path, f"signal file {file_name} not found next to the header")
        frame_bytes = len(group) * SAMPLE_BYTES[group[0].fmt]
        available = signal_path.stat().st_size - group[0].byte_offset
        if n_samples is None:
            n_samples = max(available, 0) // frame_bytes
        needed = n_samples * frame_bytes
        if available < needed:
            raise _fail(
                path,
                f"signal file {file_name} is truncated ({available + group[0].byte_offset} of "
                f"{needed + group[0].byte_offset} bytes)",
            )
    if not n_samples:
        raise _fail(path, "record holds 0 samples")
    return WfdbHeader(path=path, fs=fs, n_samples=n_samples, signals=signals)


def _groups(signals: tuple[WfdbSignal, ...]) -> dict[str, list[WfdbSignal]]:
    groups: dict[str, list[WfdbSignal]] = {}
    for signal in signals:
        groups.setdefault(signal.file_name, []).append(signal)
    return groups


def _read_digital(path: Path, fmt: int, offset: int, count: int) -> np.ndarray:
    with path.open("rb") as handle:
        if fmt == 16:
            return np.fromfile(handle, dtype="<i2", count=count, offset=offset).astype(np.int64)
        if fmt == 32:
            return np.fromfile(handle, dtype="<i4", count=count, offset=offset).astype(np.int64)
        raw = np.fromfile(handle, dtype=np.uint8, count=count * SAMPLE_BYTES[fmt], offset=offset)
    if fmt == 80:
        return raw.astype(np.int64) - 128
    b = raw.reshape(-1, 3).astype(np.int64)
    value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return (value ^ 0x800000) - 0x800000  # sign-extend 24 bits


def read_signals(header: WfdbHeader) -> np.ndarray:
    """Read every signal of a record in physical units, ``(digital - baseline) / gain``.

    Parameters
    ----------
    header : WfdbHeader
        From :func:`read_header`.

    Returns
    -------
    np.ndarray, shape (n_samples, n_signals), float64

    Raises
    ------
    DecodeError
        A signal's sum does not match the checksum in the header.
    """
    columns: list[np.ndarray] = []
    for file_name, group in _groups(header.signals).items():
        digital = _read_digital(
            header.path.with_name(file_name), group[0].fmt, group[0].byte_offset, header.n_samples * len(group)
        ).reshape(header.n_samples, len(group))
        for i, signal in enumerate(group):
            column = digital[:, i]
            if signal.checksum is not None:
                total = (int(column.sum()) + 32768) % 65536 - 32768  # WFDB checksums are signed 16-bit sums
                if total != signal.checksum:
                    raise _fail(
                        header.path,
                        f"checksum mismatch in {file_name} (header {signal.checksum}, data {total}): "
                        "the signal file is corrupt or belongs to another record",
                    )
            columns.append((column - signal.baseline) / signal.gain)
    return np.stack(columns, axis=1)


def wfdb_signal_files(path: str | os.PathLike) -> list[Path]:
    """The signal files a WFDB header names, next to it; ``[]`` when the header cannot be parsed.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.hea`` file.

    Returns
    -------
    list of Path
        Distinct signal files in header order (they may not exist).
    """
    path = Path(path)
    try:
        lines = _header_lines(path)
        n_signals = int(lines[0].split()[1])
    except (DecodeError, IndexError, ValueError):
        return []  # the decoder reports what is wrong with the header
    names = dict.fromkeys(line.split()[0] for line in lines[1 : 1 + n_signals])
    return [path.with_name(name) for name in names if _plain_name(name)]
